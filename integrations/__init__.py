"""Trainer integrations: nnU-Net (``integrations.nnunet``) and smp/timm loops (``integrations.smp_timm``)."""
