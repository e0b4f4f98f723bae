"""Training of distpaint's networks: config, losses, Algorithm 1's step, re-composition,
checkpoints and the single-process loop (`distpaint train --local`). The modules config,
losses, step, recompose and checkpoint need only torch, numpy and pyyaml; `data` and `local`
also use distpaint.data (synthetic masks, gaps)."""
