"""nnU-Net v2 integration: trainers that mix synthetic pairs in on the fly (see docs/nnunet.md).

nnU-Net finds the trainers by class name when ``nnUNet_extTrainer`` points at
this folder (``TRAINER_DIR``). Nothing is imported here: nnU-Net imports the
modules of this folder as top-level modules, and ``import integrations.nnunet``
must stay cheap for anyone who only wants the path.
"""
from pathlib import Path

TRAINER_DIR = Path(__file__).resolve().parent
