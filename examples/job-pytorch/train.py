"""A small PyTorch training run on synthetic data (no dataset download).

Learns y = sin(x0) + 0.5 * x1**2 - x2 with a small MLP on CPU and saves the model
into $OUT_DIR (default /app/out: the working directory of `ksi run`, seen by the
pod through hostPath /app).
"""

import json
import os
import time

import torch
from torch import nn

OUT_DIR = os.environ.get("OUT_DIR", "/app/out")
EPOCHS = int(os.environ.get("EPOCHS", "20"))


def make_data(n: int, gen: torch.Generator) -> tuple:
    x = torch.rand(n, 3, generator=gen) * 4 - 2
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] ** 2 - x[:, 2]
    return x, y.unsqueeze(1)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x_train, y_train = make_data(8192, gen)
    x_test, y_test = make_data(1024, gen)

    model = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{EPOCHS} epochs", flush=True)

    start = time.monotonic()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for i in range(0, len(x_train), 256):
            opt.zero_grad()
            loss = loss_fn(model(x_train[i:i + 256]), y_train[i:i + 256])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            test_loss = loss_fn(model(x_test), y_test).item()
        print(f"epoch {epoch:3d}  test MSE {test_loss:.5f}", flush=True)

    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, "model.pt")
    torch.save(model.state_dict(), path)
    with open(os.path.join(OUT_DIR, "metrics.json"), "w") as fh:
        json.dump({"test_mse": test_loss, "epochs": EPOCHS,
                   "seconds": round(time.monotonic() - start, 2)}, fh)
    print(f"saved {path}", flush=True)


if __name__ == "__main__":
    main()
