"""The epoch loop both integrations share: AdamW, cosine LR, optional bf16 autocast, tqdm."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def fit(model: torch.nn.Module, dataset, step_loss: Callable[[torch.nn.Module, dict], torch.Tensor], epochs: int,
        batch_size: int = 16, lr: float = 1e-3, device: str = "cpu", bf16: bool = True, seed: int = 0,
        num_workers: int = 0, desc: str = "train",
        on_epoch_end: Optional[Callable[[int, float], bool]] = None) -> torch.nn.Module:
    """Train ``model`` in place for ``epochs`` on ``dataset`` (any synthaug item dataset).

    ``on_epoch_end(epoch, mean training loss)`` runs after every epoch (e.g. to
    measure a validation set and keep the best weights); returning True stops
    training there (early stopping). The model is put back in train mode after it.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size,
                        generator=g, num_workers=num_workers)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    amp = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)
    for epoch in tqdm(range(epochs), desc=desc, leave=False):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        total, n = 0.0, 0
        for batch in loader:
            batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            with amp:
                loss = step_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()), n + 1
        if on_epoch_end is not None:
            stop = on_epoch_end(epoch, total / max(n, 1))
            model.train()
            if stop:
                break
    return model.eval()


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int = 32, device: str = "cpu", bf16: bool = True):
    """Yield (batch, model output as float32) over ``dataset`` in order."""
    model.to(device).eval()
    amp = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with amp:
            out = model(batch["image"].to(device))
        yield batch, out.float().cpu()
