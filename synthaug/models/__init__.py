"""Model builders. Every network is a diffusers ModelMixin (save_pretrained/from_pretrained)."""
