"""Training loops for the embedded models: ``python -m mmstudio train MODEL_ID [options]``.

Each model id maps to a module exposing ``main(model_id: str, argv: list[str]) -> int``, which
parses its own options (``--steps``, ``--seed``, ``--out``, ``--resume`` ...), trains with a
progress bar and a log, saves a resumable checkpoint every few minutes (``checkpoint.py``), and
writes the library-native folder into ``assets/models/<id>/``.
"""

TRAINERS: dict[str, str] = {
    "shapes-vqvae": "mmstudio.training.vq",
    "shapes-vqgan": "mmstudio.training.vq",
    "shapes-clip": "mmstudio.training.clip",
    "shapes-unet": "mmstudio.training.unet",
}
