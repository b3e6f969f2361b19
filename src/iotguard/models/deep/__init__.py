"""Deep models (torch): MLP, 1-D CNN, LSTM and CNN-LSTM per record and over windows of flows, autoencoder.

Importing this package does not import torch: torch is needed to train, never to score. Scoring goes through
the ONNX graph in the model artifact (numpy + onnxruntime); :mod:`.windows` (numpy only) builds the inputs of
the window models on the sensor. :mod:`.specs` registers the models in the zoo.
"""
