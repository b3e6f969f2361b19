from iotguard.cli.main import main

main()
