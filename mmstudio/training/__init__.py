"""Training loops for the embedded models: ``python -m mmstudio train MODEL_ID [options]``.

Each model id maps to a module exposing ``main(model_id: str, argv: list[str]) -> int``, which
parses its own options (``--steps``, ``--seed``, ``--out``, ``--resume`` ...), trains with a
progress bar and a log, saves a resumable checkpoint every few minutes (``checkpoint.py``), and
writes the library-native folder into ``assets/models/<id>/``.

Conventions for every trainer: ``--threads`` (default 1: torch.set_num_threads) so that training
shares a small machine; run it in the background (``nohup nice -n 5 python3 -m mmstudio train ID
... > runs/ID.log 2>&1 &``); write run folders under ``runs/`` (git-ignored); checkpoint with
``checkpoint.save_checkpoint`` every ~3 minutes (``checkpoint.Every``) and resume with ``--resume``.
Engineers working in parallel in this tree: also read /tmp/common_brief.txt (git rules, limits).
"""

TRAINERS: dict[str, str] = {
    "shapes-vqvae": "mmstudio.training.vq",
    "shapes-vqgan": "mmstudio.training.vq",
    "shapes-vqvae-f8": "mmstudio.training.vq",
    "shapes-vqgan-f8": "mmstudio.training.vq",
    "shapes-clip": "mmstudio.training.clip",
    "shapes-unet": "mmstudio.training.unet",
    "shapes-vae": "mmstudio.training.vae",
    "shapes-dit": "mmstudio.training.dit",
    "shapes-gpt": "mmstudio.training.gpt",
    "motion-dit": "mmstudio.training.motion",
    "sounds-codec": "mmstudio.training.codec",
    "sounds-clap": "mmstudio.training.clap",
}
