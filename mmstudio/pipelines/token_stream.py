"""One token stream for a text-to-image prior: the caption's tokens, then the image's tokens.

DALL-E v1 (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation") models text and image as one
sequence: up to 256 BPE text tokens, padded to a fixed length, then the 32 x 32 dVAE tokens in
raster order; a transformer predicts each token from everything before it. Here the text is a
caption tokenized by the tokenizer the studio's shapes captions always go through (open_clip's
``SimpleTokenizer``, as ``shapes-clip`` reads them), padded to ``text_length``; a begin-of-image
token follows; then the ``grid`` x ``grid`` codes of a VQ model (``shapes-vqvae``) in raster order.

Ids in the stream (one vocabulary for both parts)::

    [0, num_codes)                            image codes, as the VQ numbers them
    num_codes + j                             text token ``text_table[j]`` (an open_clip id)
    num_codes + len(text_table)               begin-of-image

Only the open_clip ids of the world's own words (and start, end, padding) get a place in the
table: a world caption uses 27 of open_clip's 49,408 ids, so an embedding table of all of them
would be almost all unused weights. A word outside the table is left out of the stream (the model
never read it; the studio names such words to the user, ``Catalog.unknown_words_message``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError

STREAM_FILE = "token_stream.json"
TOKENIZER = "open_clip.SimpleTokenizer"
PAD = 0  # open_clip pads with id 0


def open_clip_tokenizer() -> Any:
    """open_clip's BPE tokenizer (the one ``shapes-clip``'s ``local-dir`` config gets)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


@dataclass(frozen=True)
class ImageTokenStream:
    """The layout of one stream: text (``text_length`` ids), begin-of-image, ``grid**2`` codes."""

    text_table: tuple[int, ...]  # open_clip ids with a place in the stream; [0] = padding
    num_codes: int = 512
    grid: int = 8
    text_length: int = 16  # start + words + end, padded: the longest shapes caption is 16
    tokenizer: str = TOKENIZER

    def __post_init__(self) -> None:
        if self.text_table[:1] != (PAD,):
            raise ValueError("text_table[0] must be the padding id 0")

    # ------------------------------------------------------------------ geometry
    @property
    def image_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def text_offset(self) -> int:
        return self.num_codes

    @property
    def boi(self) -> int:
        """The begin-of-image id."""
        return self.num_codes + len(self.text_table)

    @property
    def vocab_size(self) -> int:
        return self.boi + 1

    @property
    def prefix_length(self) -> int:
        """Tokens before the first image token: the text and begin-of-image."""
        return self.text_length + 1

    @property
    def length(self) -> int:
        return self.prefix_length + self.image_tokens

    @cached_property
    def _table(self) -> dict[int, int]:
        return {open_clip_id: j for j, open_clip_id in enumerate(self.text_table)}

    @cached_property
    def _bpe(self) -> Any:
        return open_clip_tokenizer()

    # ------------------------------------------------------------------ text
    def caption_ids(self, prompt: str) -> list[int]:
        """The open_clip ids of ``prompt`` that the stream knows, start and end included,
        truncated to ``text_length`` (end kept), without padding."""
        bpe = self._bpe
        words = [i for i in bpe.encode(str(prompt)) if i in self._table]
        words = words[: self.text_length - 2]
        return [bpe.sot_token_id, *words, bpe.eot_token_id]

    def text_ids(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, text_length) stream ids of the prompts' text parts ("" = unconditional)."""
        rows = []
        for prompt in prompts:
            ids = self.caption_ids(prompt)
            ids += [PAD] * (self.text_length - len(ids))
            rows.append([self.text_offset + self._table[i] for i in ids])
        return torch.tensor(rows, dtype=torch.long)

    def prefix(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, prefix_length): text, then begin-of-image; what the prior continues."""
        text = self.text_ids(prompts)
        boi = torch.full((len(prompts), 1), self.boi, dtype=torch.long)
        return torch.cat([text, boi], dim=1)

    def unknown_ids(self, prompt: str) -> list[int]:
        """open_clip ids of ``prompt`` that the stream leaves out."""
        return [i for i in self._bpe.encode(str(prompt)) if i not in self._table]

    # ------------------------------------------------------------------ image
    def stream(self, prompts: Sequence[str], codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, length): text, begin-of-image, then the (B, grid, grid) codes in raster order."""
        codes = torch.as_tensor(np.asarray(codes), dtype=torch.long).reshape(len(prompts), -1)
        if codes.shape[1] != self.image_tokens:
            raise ValueError(f"expected {self.image_tokens} codes per image, got {codes.shape[1]}")
        if int(codes.min()) < 0 or int(codes.max()) >= self.num_codes:
            raise ValueError(f"codes must be in [0, {self.num_codes})")
        return torch.cat([self.prefix(prompts), codes], dim=1)

    def codes(self, stream: torch.Tensor) -> np.ndarray:
        """The (B, grid, grid) codes of whole streams (B, length)."""
        image = stream[:, self.prefix_length:]
        return image.reshape(-1, self.grid, self.grid).cpu().numpy().astype(np.int64)

    def describe(self, stream: torch.Tensor) -> list[str]:
        """A stream as words, for people and tests: ``<start> a red ... <end> <pad> <image> 17``."""
        bpe = self._bpe
        out = []
        for token in stream.tolist():
            if token < self.num_codes:
                out.append(str(token))
            elif token == self.boi:
                out.append("<image>")
            else:
                open_clip_id = self.text_table[token - self.text_offset]
                if open_clip_id == PAD:
                    out.append("<pad>")
                elif open_clip_id == bpe.sot_token_id:
                    out.append("<start>")
                elif open_clip_id == bpe.eot_token_id:
                    out.append("<end>")
                else:
                    out.append(bpe.decode([open_clip_id]).strip())
        return out

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text_table"] = list(self.text_table)
        return data

    def save(self, folder: Path) -> Path:
        path = Path(folder) / STREAM_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ImageTokenStream:
        path = Path(folder) / STREAM_FILE
        if not path.is_file():
            raise UserError(f"no {STREAM_FILE} in {folder}: not a token prior folder")
        data = json.loads(path.read_text())
        if data.get("tokenizer", TOKENIZER) != TOKENIZER:
            raise UserError(f"{path}: unknown tokenizer {data['tokenizer']!r}")
        data["text_table"] = tuple(int(i) for i in data["text_table"])
        return cls(**data)

    @classmethod
    def for_words(cls, words: Iterable[str], num_codes: int, grid: int,
                  text_length: int = 16) -> ImageTokenStream:
        """The stream whose text table holds every open_clip id of ``words`` (a world's
        vocabulary), start, end and padding, in a fixed order."""
        bpe = open_clip_tokenizer()
        ids = sorted({i for word in words for i in bpe.encode(word)})
        table = (PAD, bpe.sot_token_id, bpe.eot_token_id, *ids)
        return cls(table, num_codes=num_codes, grid=grid, text_length=text_length)
