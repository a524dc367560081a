"""Metrics of the embedded models, computed with the WORLDS.md analyzers:
``python -m mmstudio eval MODEL_ID [options]``.

Each model id maps to a module exposing ``main(model_id: str, argv: list[str]) -> int``; it prints
the figures (``--json`` for data) and, with ``--write``, stores them in the model folder's
``metrics.json`` (which the catalog shows) for the MODEL_CARD.md to quote.
"""

EVALUATORS: dict[str, str] = {
    "shapes-vqvae": "mmstudio.evaluation.vq",
    "shapes-vqgan": "mmstudio.evaluation.vq",
    "shapes-vqvae-f8": "mmstudio.evaluation.vq",
    "shapes-vqgan-f8": "mmstudio.evaluation.vq",
    "shapes-clip": "mmstudio.evaluation.clip",
    "shapes-unet": "mmstudio.evaluation.unet",
    "shapes-vae": "mmstudio.evaluation.vae",
    "shapes-dit": "mmstudio.evaluation.unet",
    "shapes-gpt": "mmstudio.evaluation.gpt",
    "motion-dit": "mmstudio.evaluation.motion",
    "sounds-codec": "mmstudio.evaluation.codec",
    "sounds-clap": "mmstudio.evaluation.clap",
}
