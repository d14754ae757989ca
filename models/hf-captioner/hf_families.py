"""How each image-to-text family is fed for training: its processor read from the base folder,
and a batch of photos + captions turned into the inputs and labels of the family's own loss
(the model's `forward(..., labels=...)`, which shifts the labels itself).

The token conventions are the folder's, never changed: the start, end and pad ids come from its
config and tokenizer, and captions are tokenized with the tokenizer as it is (no token added).

Per family (the README's table says the same):

- VisionEncoderDecoder: `pixel_values` from its image processor; labels are the tokenized
  caption ending with eos, which the model shifts right behind `decoder_start_token_id`.
- BLIP: `pixel_values` and `input_ids` = `[DEC] caption [SEP]` (the processor's ids, the first
  replaced by bos, as `generate()` starts); labels are the ids, padding ignored.
- GIT: `pixel_values` and `input_ids` = `[CLS] caption [SEP]`; labels are the ids.
- Pix2Struct: `flattened_patches` from its processor; labels are the tokenized caption ending
  with `</s>`, which the model shifts right behind pad.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

IGNORE = -100  # the loss's ignore_index: padding


class Family:
    """One architecture's training inputs. `load` reads the folder's processor (and tokenizer),
    `batch` turns photos and captions into the keyword arguments of `model(...)`."""

    architecture = ""

    def __init__(self, folder: Path, model: Any) -> None:
        self.model = model
        self.processor, self.tokenizer = self.load(folder)
        self.eos = _eos(model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else self.eos  # GPT-2 has no pad: eos, as its config

    def load(self, folder: Path) -> tuple[Any, Any]:
        processor = _auto("AutoProcessor", folder)
        return processor, processor.tokenizer

    def batch(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def tokens(self, text: str) -> list[int]:
        """The caption as the folder's tokenizer writes it, with its own special tokens."""
        return list(self.tokenizer(text).input_ids)

    def ends(self, ids: list[int]) -> list[int]:
        """`ids` ending with eos, so the model learns to stop (GPT-2's tokenizer adds none)."""
        return ids if ids and ids[-1] == self.eos else [*ids, self.eos]

    def pixels(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(images=list(images), return_tensors="pt")
        return {"pixel_values": out["pixel_values"]}


class EncoderDecoder(Family):
    architecture = "VisionEncoderDecoderModel"

    def __init__(self, folder: Path, model: Any) -> None:
        super().__init__(folder, model)
        config = model.config
        self.start = config.decoder_start_token_id
        if self.start is None:
            raise ValueError(
                f"{folder}: config.json has no decoder_start_token_id, so the decoder's first "
                "token is unknown; set it to the token generation starts from"
            )
        self.notes: list[str] = []
        if config.pad_token_id is None:
            # The model's label shift needs one; it only fills positions the loss ignores.
            config.pad_token_id = self.pad
            self.notes.append(f"config.json had no pad_token_id: set to {self.pad}")

    def load(self, folder: Path) -> tuple[Any, Any]:
        # No processor class of its own (TrOCR's aside): an image processor and a tokenizer, as
        # the Hugging Face runtime and transformers' image-to-text pipeline load them.
        return _auto("AutoImageProcessor", folder), _auto("AutoTokenizer", folder)

    def batch(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict[str, torch.Tensor]:
        seqs = []
        for text in texts:
            ids = self.tokens(text)
            # A tokenizer that writes the start token itself (BERT's [CLS]) would teach the
            # model to repeat it: the shift already puts decoder_start_token_id in front.
            if ids and ids[0] == self.start:
                ids = ids[1:]
            seqs.append(self.ends(ids))
        labels = _pad(seqs, IGNORE)
        return {
            **self.pixels(images),
            "labels": labels,
            "decoder_attention_mask": (labels != IGNORE).long(),
        }


class Blip(Family):
    architecture = "BlipForConditionalGeneration"

    def __init__(self, folder: Path, model: Any) -> None:
        super().__init__(folder, model)
        text = model.config.text_config
        # generate() replaces the first token with bos ([DEC]) and stops at sep ([SEP]).
        self.bos, self.eos = text.bos_token_id, text.sep_token_id or self.eos

    def batch(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict[str, torch.Tensor]:
        first = {self.bos, self.tokenizer.cls_token_id}
        seqs = []
        for text in texts:
            ids = self.tokens(text)
            seqs.append(self.ends([self.bos, *(ids[1:] if ids and ids[0] in first else ids)]))
        return {**self.pixels(images), **_text_inputs(seqs, self.pad)}


class Git(Family):
    architecture = "GitForCausalLM"

    def __init__(self, folder: Path, model: Any) -> None:
        super().__init__(folder, model)
        bos = model.generation_config.bos_token_id
        self.bos = bos if bos is not None else model.config.bos_token_id

    def batch(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict[str, torch.Tensor]:
        seqs = []
        for text in texts:
            ids = self.tokens(text)
            # generate() starts from bos ([CLS]) when given no prompt: the caption follows it.
            seqs.append(self.ends(ids if ids and ids[0] == self.bos else [self.bos, *ids]))
        return {**self.pixels(images), **_text_inputs(seqs, self.pad)}


class Pix2Struct(Family):
    architecture = "Pix2StructForConditionalGeneration"

    def pixels(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(images=list(images), return_tensors="pt")
        return {
            "flattened_patches": out["flattened_patches"],
            "attention_mask": out["attention_mask"],
        }

    def batch(self, images: Sequence[Image.Image], texts: Sequence[str]) -> dict[str, torch.Tensor]:
        labels = _pad([self.ends(self.tokens(text)) for text in texts], IGNORE)
        return {
            **self.pixels(images),
            "labels": labels,
            "decoder_attention_mask": (labels != IGNORE).long(),
        }


FAMILIES: dict[str, type[Family]] = {
    cls.architecture: cls for cls in (EncoderDecoder, Blip, Git, Pix2Struct)
}


def family(architecture: str, folder: Path, model: Any) -> Family:
    if architecture not in FAMILIES:
        raise ValueError(
            f"{folder}: a {architecture} is not a captioner this recipe fine-tunes; it takes "
            f"{', '.join(FAMILIES)}"
        )
    return FAMILIES[architecture](folder, model)


def _eos(model: Any, tokenizer: Any) -> int:
    """The id generation stops at: the generation config's, else the config's, the tokenizer's."""
    for found in (
        model.generation_config.eos_token_id,
        getattr(model.config, "eos_token_id", None),
        tokenizer.eos_token_id,
        tokenizer.sep_token_id,
    ):
        if isinstance(found, list):
            found = found[0] if found else None
        if found is not None:
            return int(found)
    raise ValueError("the folder names no end-of-sequence token (eos_token_id)")


def _pad(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    out = torch.full((len(seqs), max(map(len, seqs))), value, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def _text_inputs(seqs: Sequence[Sequence[int]], pad: int) -> dict[str, torch.Tensor]:
    """Decoder-only text: the ids padded, their mask, and the ids again as labels (the model
    shifts them), padding ignored by the loss."""
    input_ids = _pad(seqs, pad)
    mask = _pad([[1] * len(seq) for seq in seqs], 0)
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "labels": input_ids.masked_fill(mask == 0, IGNORE),
    }


def _auto(name: str, folder: Path) -> Any:
    import transformers

    return getattr(transformers, name).from_pretrained(
        folder, local_files_only=True, trust_remote_code=False
    )
