"""Deep models (torch): MLP, 1-D CNN, LSTM and CNN-LSTM per record and over windows of flows, autoencoder.

Importing this package does not import torch: torch is needed to train, never to score. Scoring goes through
the ONNX graph in the model artifact (numpy + onnxruntime); :mod:`.windows` (numpy only) builds the inputs of
the window models on the sensor. :mod:`.specs` registers the models in the zoo.
"""

import os

# torch's OpenMP threads busy-wait between parallel regions by default; on a gateway or a shared machine
# whose cores are busy with other work that made training up to 30x slower. Passive waiting costs little
# on an idle machine. Only takes effect if torch is not loaded yet, and never overrides the user's choice.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from iotguard.models.deep import specs as _specs  # noqa: E402,F401  (registers the deep models)
