"""Small, standard Hugging Face model folders, built offline, to test a runtime on each family.

`build(kind, out)` writes a folder as a user would have it on disk after `save_pretrained`:
config.json, model.safetensors, generation_config.json where the family generates, and the
tokenizer, image processor or processor the family ships with, so that the Auto classes load it
from the folder alone (`local_files_only=True`). Nothing is downloaded: the configs are written
here, and the tokenizers are trained here with the `tokenizers` library on a small built-in
corpus of product descriptions (byte-level BPE for GPT-2, RoBERTa, Llama and SmolLM styles,
WordPiece for BERT styles, Unigram for Pix2Struct's T5 style; the last two are derived from a
BPE, as the WordPiece and Unigram trainers are not deterministic), wrapped in the family's
transformers tokenizer class with its special tokens. Every config's vocab_size and
pad/bos/eos/decoder_start ids agree with its tokenizer.

Weights are random, seeded with `torch.manual_seed(seed)`: a build is deterministic.

How random weights still write text: in every generating model, the output-embedding rows (and
the head's bias, where there is one) of the tokens that decode to nothing visible are zeroed:
special tokens (eos, pad, bos, image tokens...), tokens that decode to blanks, partial UTF-8
bytes or control characters, and the padding rows of a config vocabulary larger than the
tokenizer (size="base" keeps the real models' vocab sizes, while the tokenizer trained here is
small). Their logit is then exactly 0 while the visible tokens' logits are random and spread
around 0, so greedy or beam search always picks a visible word piece, and never eos: every
generate() runs to the generation config's max_new_tokens (8 for tiny, 20 for base) and decodes
to non-empty text. Where a head is tied to the input embeddings, those rows are zero on the
input side too; nothing depends on it. "vit-gpt2" alone sets num_beams=2 in its generation
config, so that a runtime that ignores the generation config can be caught; the others use 1.

What these folders hold as the real ones do, for a runtime to honour: "vit-roberta" starts
generation from </s> (decoder_start_token_id=2, as TrOCR), not from bos; "vit-bert" starts from
[CLS] and ends at [SEP] (its tokenizer has no eos); BlipForConditionalGeneration.generate hands
over to its text decoder, which reads generation_config.json only when it is passed as
`generation_config=` (otherwise it stops at transformers' default max_length of 20);
AutoProcessor on the plain VisionEncoderDecoder folders gives the tokenizer, as on
nlpconnect/vit-gpt2-image-captioning (use AutoImageProcessor and AutoTokenizer; "vit-roberta"
has a TrOCRProcessor); ViT-style image processors do not convert grey or RGBA images to RGB.

size="tiny": hidden sizes of 32, 2 layers, images of 32 px (64 px for Idefics3, split into
32 px tiles; Pix2Struct takes its processor's 2048 patches of 8 px), so that building every kind
takes seconds and one generate() well under a second.
size="base": the real sizes, for benchmarks, for "vit-gpt2" (ViT-B/16 at 224 px and GPT-2
124M), "blip" (BLIP-base at 384 px) and "idefics3" (SmolVLM-256M: SigLIP-B/16 at 512 px and a
SmolLM2-135M text model); other kinds raise ValueError.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers as tokenizer_trainers
from transformers import (
    AddedToken,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessorPil,
    BlipProcessor,
    CLIPImageProcessorPil,
    ConvNextConfig,
    ConvNextForImageClassification,
    ConvNextImageProcessorPil,
    DeiTConfig,
    DeiTImageProcessorPil,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertTokenizer,
    GenerationConfig,
    GitConfig,
    GitForCausalLM,
    GitProcessor,
    GPT2Config,
    GPT2Tokenizer,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Pix2StructConfig,
    Pix2StructForConditionalGeneration,
    Pix2StructImageProcessorPil,
    Pix2StructProcessor,
    PreTrainedTokenizerFast,
    ResNetConfig,
    ResNetForImageClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizer,
    SwinConfig,
    T5Tokenizer,
    TrOCRProcessor,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
)

SIZES = ("tiny", "base")

KINDS: dict[str, str] = {
    # image-to-text
    "vit-gpt2": "image-to-text: VisionEncoderDecoder, ViT encoder + GPT-2 decoder (num_beams=2)",
    "deit-gpt2": "image-to-text: VisionEncoderDecoder, DeiT encoder + GPT-2 decoder",
    "swin-gpt2": "image-to-text: VisionEncoderDecoder, Swin encoder + GPT-2 decoder",
    "vit-bert": "image-to-text: VisionEncoderDecoder, ViT encoder + BERT decoder ([CLS] starts)",
    "vit-roberta": "image-to-text: VisionEncoderDecoder, ViT + RoBERTa decoder, TrOCR style "
    "(</s> starts), TrOCRProcessor",
    "blip": "image-to-text: BlipForConditionalGeneration + BlipProcessor",
    "git": "image-to-text: GitForCausalLM + GitProcessor",
    "pix2struct": "image-to-text: Pix2StructForConditionalGeneration + Pix2StructProcessor",
    # image-text-to-text
    "llava": "image-text-to-text: LlavaForConditionalGeneration (CLIP vision tower, Llama text "
    "model) + LlavaProcessor with a chat template",
    "idefics3": "image-text-to-text: Idefics3ForConditionalGeneration (SmolVLM) + "
    "Idefics3Processor with a chat template",
    # text-classification
    "bert-cls": "text-classification: BertForSequenceClassification, ad categories",
    "distilbert-cls": "text-classification: DistilBertForSequenceClassification, ad categories",
    "roberta-cls": "text-classification: RobertaForSequenceClassification, ad categories",
    # image-classification
    "vit-cls": "image-classification: ViTForImageClassification + ViTImageProcessor",
    "convnext-cls": "image-classification: ConvNextForImageClassification + ConvNextImageProcessor",
    "resnet-cls": "image-classification: ResNetForImageClassification + ConvNextImageProcessor "
    "(as microsoft/resnet-50)",
}

# The kinds with a real-size configuration, for benchmarks.
BASE_KINDS = frozenset({"vit-gpt2", "blip", "idefics3"})

# The classifiers' labels: ad categories.
LABELS = ("shoes", "bags", "furniture", "electronics")

MAX_NEW_TOKENS = {"tiny": 8, "base": 20}

# Files that may hold pickles: never in a folder built here.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

# Tiny sizes shared by most kinds.
_WIDTH = 32
_IMAGE = 32
_PATCH = 8
_LAYERS = 2
_HEADS = 2
_POSITIONS = 64

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_HALF = [0.5, 0.5, 0.5]
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


# --- the corpus ------------------------------------------------------------------------------

_COLOURS = (
    "red", "blue", "green", "black", "white", "brown",
    "grey", "yellow", "pink", "navy", "beige", "orange",
)  # fmt: skip
_MATERIALS = (
    "leather", "canvas", "wooden", "metal", "plastic",
    "cotton", "wool", "suede", "glass", "ceramic",
)  # fmt: skip
_PRODUCTS = (
    "shoe", "sneaker", "boot", "sandal", "slipper",  # shoes
    "bag", "backpack", "handbag", "wallet", "suitcase",  # bags
    "chair", "table", "sofa", "lamp", "shelf",  # furniture
    "phone", "laptop", "camera", "headphones", "speaker",  # electronics
)  # fmt: skip
_SCENES = (
    "on a white background", "on a wooden floor", "in a bright room", "on a grey table",
    "next to a window", "in low light", "outdoors on the grass", "held in a hand",
)  # fmt: skip
_TEMPLATES = (
    "a {colour} {material} {product} {scene}",
    "{colour} {product} for sale, {material}, like new",
    "used {material} {product} in {colour}, good condition",
    "Photo of a {colour} {product} {scene}.",
)


def corpus() -> list[str]:
    """Short product descriptions ("a red leather shoe on a white background" and variations),
    after a line of every printable ASCII character, so that any ASCII text has pieces."""
    lines = [" ".join(string.ascii_letters + string.digits + string.punctuation)]
    for i, (colour, product) in enumerate(itertools.product(_COLOURS, _PRODUCTS)):
        material, scene = _MATERIALS[i % len(_MATERIALS)], _SCENES[i % len(_SCENES)]
        for template in _TEMPLATES:
            lines.append(
                template.format(colour=colour, material=material, product=product, scene=scene)
            )
    return lines


# --- tokenizers ------------------------------------------------------------------------------

_Merges = tuple[tuple[str, str], ...]
_Vocab = tuple[tuple[str, int], ...]


def _merges_of(raw: Tokenizer) -> _Merges:
    merges = json.loads(raw.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    return tuple((a, b) for a, b in pairs)


# Only the BPE trainer of `tokenizers` is deterministic from run to run: its WordPiece trainer
# numbers the "##" pieces in hash-map order, which then breaks ties between merges
# (huggingface/tokenizers#1794), and its Unigram trainer's scores differ in the last digits. So
# the WordPiece and Unigram vocabularies are derived here from a BPE trained on the same words.


def _pre_tokenized(style: str) -> Tokenizer:
    """An empty BPE tokenizer with the normalizer and pre-tokenizer of a family's style."""
    raw = Tokenizer(models.BPE())
    if style == "byte-level":  # GPT-2, RoBERTa, Llama 3, SmolLM
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif style == "bert":  # BERT uncased: lowercase, split on spaces and punctuation
        raw.normalizer = normalizers.BertNormalizer(lowercase=True)
        raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    elif style == "metaspace":  # T5's sentencepiece: "▁" starts each word
        raw.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            ]
        )
    else:
        raise ValueError(style)
    return raw


@functools.cache
def _trained_bpe(style: str, specials: tuple[str, ...], vocab_size: int) -> tuple[_Vocab, _Merges]:
    raw = _pre_tokenized(style)
    alphabet = pre_tokenizers.ByteLevel.alphabet() if style == "byte-level" else []
    trainer = tokenizer_trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    raw.train_from_iterator(corpus(), trainer)
    vocab = sorted(raw.get_vocab().items(), key=lambda item: item[1])
    return tuple(vocab), _merges_of(raw)


def _byte_level_bpe(specials: tuple[str, ...], vocab_size: int) -> tuple[dict[str, int], list[Any]]:
    """A fresh copy of the trained vocabulary and merges (pairs, as `tokenizers` takes them;
    transformers' annotation says strings)."""
    vocab, merges = _trained_bpe("byte-level", specials, vocab_size)
    return dict(vocab), list(merges)


def _wordpiece(specials: tuple[str, ...], vocab_size: int) -> dict[str, int]:
    """A WordPiece vocabulary: the specials, then each BPE piece both as a word's start and,
    "##"-prefixed, as its continuation (WordPiece takes the longest piece that matches)."""
    vocab, _ = _trained_bpe("bert", (), (vocab_size - len(specials)) // 2)
    pieces = [piece for piece, _ in vocab]
    tokens = [*specials, *pieces, *(f"##{piece}" for piece in pieces)]
    return {token: i for i, token in enumerate(tokens)}


@functools.cache
def _unigram(specials: tuple[str, ...], vocab_size: int) -> tuple[tuple[str, float], ...]:
    """A Unigram vocabulary: the specials (score 0), then the BPE pieces scored with the log of
    their (smoothed) frequency in the BPE segmentation of the corpus."""
    vocab, merges = _trained_bpe("metaspace", (), vocab_size - len(specials))
    raw = _pre_tokenized("metaspace")
    raw.model = models.BPE(vocab=dict(vocab), merges=list[Any](merges))
    counts = Counter(t for line in corpus() for t in raw.encode(line).tokens)
    total = sum(counts.values()) + len(vocab)
    scored = [(piece, math.log((counts[piece] + 1) / total)) for piece, _ in vocab]
    return (*((special, 0.0) for special in specials), *scored)


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise RuntimeError(f"{token!r} is not in the tokenizer")
    return found


def _special(*tokens: str) -> list[AddedToken]:
    return [AddedToken(t, special=True, normalized=False) for t in tokens]


def gpt2_tokenizer(max_length: int = _POSITIONS) -> GPT2Tokenizer:
    """GPT-2's byte-level BPE with <|endoftext|> as bos, eos and unk (and no pad, as GPT-2)."""
    vocab, merges = _byte_level_bpe(("<|endoftext|>",), 1000)
    return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def roberta_tokenizer() -> RobertaTokenizer:
    """RoBERTa's byte-level BPE: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4."""
    vocab, merges = _byte_level_bpe(("<s>", "<pad>", "</s>", "<unk>", "<mask>"), 1000)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=_POSITIONS)


_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bert_tokenizer(
    cls: type[BertTokenizer] = BertTokenizer, max_length: int = _POSITIONS
) -> BertTokenizer:
    """An uncased WordPiece: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4."""
    return cls(vocab=_wordpiece(_BERT_SPECIALS, 800), model_max_length=max_length)


def blip_tokenizer(max_length: int = _POSITIONS) -> BertTokenizer:
    """BLIP's: BERT's WordPiece with [DEC] as bos (the decoder's first token) and [ENC] added."""
    tokenizer = bert_tokenizer(max_length=max_length)
    tokenizer.add_special_tokens(
        {"bos_token": _special("[DEC]")[0], "extra_special_tokens": _special("[ENC]")}
    )
    return tokenizer


def llama_tokenizer() -> PreTrainedTokenizerFast:
    """A Llama-3 style byte-level BPE: <unk>=0, <s>=1 (added in front), </s>=2, then <image>
    and <pad> added, as llava-hf's tokenizers have them."""
    vocab, merges = _byte_level_bpe(("<unk>", "<s>", "</s>"), 1000)
    raw = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=256,
    )
    tokenizer.add_special_tokens(
        {"pad_token": _special("<pad>")[0], "extra_special_tokens": _special("<image>")}
    )
    return tokenizer


def smolvlm_tokenizer(max_length: int = 256) -> GPT2Tokenizer:
    """SmolVLM's: a GPT-2 class byte-level BPE, bos <|im_start|>, eos <end_of_utterance>,
    pad <|im_end|>, with the image tokens Idefics3Processor looks up."""
    vocab, merges = _byte_level_bpe(("<|endoftext|>", "<|im_start|>", "<|im_end|>"), 1000)
    tokenizer = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        pad_token="<|im_end|>",
        model_max_length=max_length,
    )
    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    image_tokens = ["<fake_token_around_image>", "<image>", "<global-img>", *tiles]
    eos = _special("<end_of_utterance>")[0]
    tokenizer.add_special_tokens(
        {"eos_token": eos, "extra_special_tokens": _special(*image_tokens)}
    )
    return tokenizer


def t5_tokenizer() -> T5Tokenizer:
    """T5's Unigram (as Pix2Struct's): <pad>=0, </s>=1, <unk>=2, no extra ids."""
    pieces = list(_unigram(("<pad>", "</s>", "<unk>"), 600))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=_POSITIONS)


# --- making random weights write text ---------------------------------------------------------


def _visible(text: str) -> bool:
    return bool(text.strip()) and text.isprintable() and "\ufffd" not in text


def invisible_ids(tokenizer: Any, vocab_size: int) -> list[int]:
    """Ids below vocab_size that decode to nothing visible: special tokens, blanks, partial bytes,
    control characters, and the padding rows beyond the tokenizer."""
    special = set(tokenizer.all_special_ids)
    size = len(tokenizer)
    return [
        i
        for i in range(vocab_size)
        if i >= size or i in special or not _visible(tokenizer.decode([i]))
    ]


def _mute(head: Any, ids: list[int]) -> None:
    with torch.no_grad():
        head.weight[ids] = 0.0
        if getattr(head, "bias", None) is not None:
            head.bias[ids] = 0.0


def _mute_invisible(model: Any, tokenizer: Any, vocab_size: int) -> None:
    head = model.get_output_embeddings()
    if head is None or head.weight.shape[0] != vocab_size:
        raise RuntimeError(f"{type(model).__name__}: no output embeddings of {vocab_size} rows")
    _mute(head, invisible_ids(tokenizer, vocab_size))


def _generation(size: str, num_beams: int = 1, **ids: Any) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS[size], num_beams=num_beams, **ids)


# --- image-to-text: VisionEncoderDecoder -----------------------------------------------------


def _vit(size: str, cls: type = ViTConfig) -> Any:
    if size == "base":
        return cls()  # ViT-B/16 at 224 px
    return cls(
        image_size=_IMAGE,
        patch_size=_PATCH,
        hidden_size=_WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=2 * _WIDTH,
    )


def _gpt2_decoder(size: str, tokenizer: GPT2Tokenizer) -> GPT2Config:
    eos = tokenizer.eos_token_id
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": eos, "pad_token_id": eos}
    if size == "base":
        return GPT2Config(vocab_size=50257, **ids)  # GPT-2 124M
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=_POSITIONS,
        n_embd=_WIDTH,
        n_layer=_LAYERS,
        n_head=_HEADS,
        **ids,
    )


def _bert_decoder(tokenizer: BertTokenizer) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=_WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=2 * _WIDTH,
        max_position_embeddings=_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )


def _roberta(tokenizer: RobertaTokenizer, **extra: Any) -> RobertaConfig:
    return RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=_WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=2 * _WIDTH,
        max_position_embeddings=_POSITIONS + 2,  # RoBERTa's positions start after pad's id
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def _encoder_decoder(
    out: Path,
    size: str,
    encoder: Any,
    decoder: Any,
    tokenizer: Any,
    image_processor: Any,
    *,
    start: int,
    num_beams: int = 1,
    processor_cls: type | None = None,
) -> None:
    config: Any = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    pad, bos, eos = decoder.pad_token_id, decoder.bos_token_id, decoder.eos_token_id
    config.decoder_start_token_id = start
    config.pad_token_id, config.bos_token_id, config.eos_token_id = pad, bos, eos
    config.vocab_size = decoder.vocab_size
    model = VisionEncoderDecoderModel(config=config)
    _mute_invisible(model, tokenizer, decoder.vocab_size)
    model.generation_config = _generation(
        size,
        num_beams,
        decoder_start_token_id=start,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    model.save_pretrained(out)
    if processor_cls is not None:
        processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    else:
        image_processor.save_pretrained(out)
        tokenizer.save_pretrained(out)


def _vit_processor(size: str, half: bool = True) -> ViTImageProcessorPil:
    """ViT's (mean and std 0.5, as google/vit-*), or with ImageNet's mean and std (as Swin's)."""
    side = 224 if size == "base" else _IMAGE
    return ViTImageProcessorPil(
        size={"height": side, "width": side},
        image_mean=_HALF if half else _IMAGENET_MEAN,
        image_std=_HALF if half else _IMAGENET_STD,
    )


def _build_vit_gpt2(out: Path, size: str) -> None:
    # As nlpconnect/vit-gpt2-image-captioning: pad = eos = bos = <|endoftext|>, which starts too.
    tokenizer = gpt2_tokenizer(1024 if size == "base" else _POSITIONS)
    decoder = _gpt2_decoder(size, tokenizer)
    _encoder_decoder(
        out, size, _vit(size), decoder, tokenizer, _vit_processor(size),
        start=tokenizer.bos_token_id, num_beams=2,
    )  # fmt: skip


def _build_deit_gpt2(out: Path, size: str) -> None:
    tokenizer = gpt2_tokenizer()
    side = {"height": _IMAGE, "width": _IMAGE}
    processor = DeiTImageProcessorPil(size=side, crop_size=side)
    encoder = _vit(size, DeiTConfig)
    decoder = _gpt2_decoder(size, tokenizer)
    _encoder_decoder(
        out, size, encoder, decoder, tokenizer, processor, start=tokenizer.bos_token_id
    )


def _build_swin_gpt2(out: Path, size: str) -> None:
    tokenizer = gpt2_tokenizer()
    # 32 px in 4 px patches: 8 x 8, merged once to 4 x 4 of width 2 * 16 = the decoder's 32.
    encoder = SwinConfig(
        image_size=_IMAGE,
        patch_size=4,
        embed_dim=_WIDTH // 2,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
    )
    decoder = _gpt2_decoder(size, tokenizer)
    processor = _vit_processor(size, half=False)  # Swin's: ViTImageProcessor, ImageNet mean/std
    _encoder_decoder(
        out, size, encoder, decoder, tokenizer, processor, start=tokenizer.bos_token_id
    )


def _build_vit_bert(out: Path, size: str) -> None:
    tokenizer = bert_tokenizer()
    decoder = _bert_decoder(tokenizer)
    _encoder_decoder(
        out, size, _vit(size), decoder, tokenizer, _vit_processor(size),
        start=tokenizer.cls_token_id,
    )  # fmt: skip


def _build_vit_roberta(out: Path, size: str) -> None:
    # TrOCR style: bos <s>=0, pad <pad>=1, eos </s>=2, and generation starts from </s>, as
    # microsoft/trocr-* do (decoder_start_token_id=2, not bos).
    tokenizer = roberta_tokenizer()
    decoder = _roberta(tokenizer)
    _encoder_decoder(
        out, size, _vit(size), decoder, tokenizer, _vit_processor(size),
        start=tokenizer.eos_token_id, processor_cls=TrOCRProcessor,
    )  # fmt: skip


# --- image-to-text: BLIP, GIT, Pix2Struct -------------------------------------------------------


def _build_blip(out: Path, size: str) -> None:
    tokenizer = blip_tokenizer(512 if size == "base" else _POSITIONS)
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,  # [DEC]
        "eos_token_id": tokenizer.sep_token_id,
        "sep_token_id": tokenizer.sep_token_id,
    }
    vocab_size = 30524 if size == "base" else len(tokenizer)
    if size == "base":  # Salesforce/blip-image-captioning-base
        side = 384
        config = BlipConfig(text_config={"vocab_size": vocab_size, **ids})
    else:
        side = _IMAGE
        config = BlipConfig(
            text_config={
                "vocab_size": vocab_size,
                "hidden_size": _WIDTH,
                "intermediate_size": 2 * _WIDTH,
                "num_hidden_layers": _LAYERS,
                "num_attention_heads": _HEADS,
                "max_position_embeddings": _POSITIONS,
                **ids,
            },
            vision_config={
                "hidden_size": _WIDTH,
                "intermediate_size": 2 * _WIDTH,
                "num_hidden_layers": _LAYERS,
                "num_attention_heads": _HEADS,
                "image_size": side,
                "patch_size": _PATCH,
            },
            projection_dim=_WIDTH,
        )
    model = BlipForConditionalGeneration(config)
    _mute_invisible(model.text_decoder, tokenizer, vocab_size)
    model.generation_config = _generation(size, **ids)
    model.save_pretrained(out)
    processor = BlipImageProcessorPil(
        size={"height": side, "width": side}, image_mean=_CLIP_MEAN, image_std=_CLIP_STD
    )
    BlipProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)


def _build_git(out: Path, size: str) -> None:
    # As microsoft/git-base: BERT's tokenizer, [CLS] starts, [SEP] ends; CLIP's image processor
    # at the vision tower's image size.
    tokenizer = bert_tokenizer()
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    config = GitConfig(
        vision_config={
            "hidden_size": _WIDTH,
            "intermediate_size": 2 * _WIDTH,
            "num_hidden_layers": _LAYERS,
            "num_attention_heads": _HEADS,
            "image_size": _IMAGE,
            "patch_size": _PATCH,
        },
        vocab_size=len(tokenizer),
        hidden_size=_WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=2 * _WIDTH,
        max_position_embeddings=_POSITIONS,
        **ids,
    )
    model = GitForCausalLM(config)
    _mute_invisible(model, tokenizer, config.vocab_size)
    model.generation_config = _generation(size, **ids)
    model.save_pretrained(out)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE}, crop_size={"height": _IMAGE, "width": _IMAGE}
    )
    GitProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)


def _build_pix2struct(out: Path, size: str) -> None:
    tokenizer = t5_tokenizer()
    # google/pix2struct-base's: Pix2StructProcessor asks for 2048 patches whatever the image
    # processor's config says, so every image is resized to about 2048 patches (8 px ones
    # here), and the rows and columns are numbered up to seq_len.
    max_patches = 2048
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.pad_token_id,  # T5's: pad starts
    }
    config = Pix2StructConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": _WIDTH,
            "d_kv": _WIDTH // _HEADS,
            "d_ff": 2 * _WIDTH,
            "num_layers": _LAYERS,
            "num_heads": _HEADS,
            **ids,
        },
        vision_config={
            "hidden_size": _WIDTH,
            "patch_embed_hidden_size": _PATCH * _PATCH * 3,
            "d_ff": 2 * _WIDTH,
            "d_kv": _WIDTH // _HEADS,
            "num_hidden_layers": _LAYERS,
            "num_attention_heads": _HEADS,
            "seq_len": 2 * max_patches,
        },
        **ids,
    )
    model = Pix2StructForConditionalGeneration(config)
    _mute_invisible(model, tokenizer, len(tokenizer))
    model.generation_config = _generation(size, **ids)
    model.save_pretrained(out)
    options: dict[str, Any] = {
        "patch_size": {"height": _PATCH, "width": _PATCH},
        "max_patches": max_patches,
        "is_vqa": False,
    }
    processor = Pix2StructImageProcessorPil(**options)
    Pix2StructProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(out)


# --- image-text-to-text: LLaVA, Idefics3 (SmolVLM) -------------------------------------------

# llava-hf/llava-1.5's layout: "USER: <image>\nWhat is this? ASSISTANT:".
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}"
    "{{ item['text'] + ' ' }}{% endif %}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# HuggingFaceTB/SmolVLM's: "<|im_start|>User:<image>What is this?<end_of_utterance>\nAssistant:".
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _tiny_llama(tokenizer: Any, **ids: Any) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=_WIDTH,
        intermediate_size=2 * _WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        num_key_value_heads=_HEADS,
        max_position_embeddings=256,
        **ids,
    )


def _build_llava(out: Path, size: str) -> None:
    tokenizer = llama_tokenizer()
    image_token = _token_id(tokenizer, "<image>")
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": _WIDTH,
            "intermediate_size": 2 * _WIDTH,
            "num_hidden_layers": _LAYERS,
            "num_attention_heads": _HEADS,
            "image_size": _IMAGE,
            "patch_size": _PATCH,
            "projection_dim": _WIDTH,
        },
        text_config=_tiny_llama(tokenizer, **ids).to_dict(),
        image_token_index=image_token,
        vision_feature_select_strategy="default",  # drop CLS: (32 / 8)^2 = 16 image tokens
        vision_feature_layer=-2,
        image_seq_length=(_IMAGE // _PATCH) ** 2,
    )
    model = LlavaForConditionalGeneration(config)
    _mute_invisible(model, tokenizer, len(tokenizer))
    model.generation_config = _generation(size, **ids)
    model.save_pretrained(out)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE}, crop_size={"height": _IMAGE, "width": _IMAGE}
    )
    LlavaProcessor(
        image_processor=processor,
        tokenizer=tokenizer,
        patch_size=_PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS
        chat_template=LLAVA_CHAT_TEMPLATE,
    ).save_pretrained(out)


def _build_idefics3(out: Path, size: str) -> None:
    tokenizer = smolvlm_tokenizer(8192 if size == "base" else 256)
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    image_token = _token_id(tokenizer, "<image>")
    if size == "base":  # HuggingFaceTB/SmolVLM-256M-Instruct
        tile, patch, scale = 512, 16, 4
        vision: dict[str, Any] = {"hidden_size": 768, "intermediate_size": 3072}
        vision.update(num_hidden_layers=12, num_attention_heads=12)
        text = LlamaConfig(
            vocab_size=49280,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            **ids,
        )
    else:  # 32 px tiles in 8 px patches: 16, shuffled 2 x 2 into 4 image tokens per tile
        tile, patch, scale = _IMAGE, _PATCH, 2
        vision = {"hidden_size": _WIDTH, "intermediate_size": 2 * _WIDTH}
        vision.update(num_hidden_layers=_LAYERS, num_attention_heads=_HEADS)
        text = _tiny_llama(tokenizer, tie_word_embeddings=True, **ids)
    config = Idefics3Config(
        vision_config={**vision, "image_size": tile, "patch_size": patch},
        text_config=text.to_dict(),
        scale_factor=scale,
        image_token_id=image_token,
        tie_word_embeddings=True,
    )
    model = Idefics3ForConditionalGeneration(config)
    _mute_invisible(model, tokenizer, text.vocab_size)
    model.generation_config = _generation(size, **ids)
    model.save_pretrained(out)
    processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 4 * tile if size == "base" else 2 * tile},
        max_image_size={"longest_edge": tile},
        do_image_splitting=True,
        image_mean=_HALF,
        image_std=_HALF,
    )
    Idefics3Processor(
        image_processor=processor,
        tokenizer=tokenizer,
        image_seq_len=((tile // patch) ** 2) // (scale**2),
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    ).save_pretrained(out)


# --- text classification ---------------------------------------------------------------------


def _labels() -> dict[str, Any]:
    return {
        "id2label": dict(enumerate(LABELS)),
        "label2id": {label: i for i, label in enumerate(LABELS)},
    }


def _save_classifier(out: Path, model: Any, preprocessor: Any) -> None:
    model.save_pretrained(out)
    preprocessor.save_pretrained(out)


def _build_bert_cls(out: Path, size: str) -> None:
    tokenizer = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=_WIDTH,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=2 * _WIDTH,
        max_position_embeddings=_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        **_labels(),
    )
    _save_classifier(out, BertForSequenceClassification(config), tokenizer)


def _build_distilbert_cls(out: Path, size: str) -> None:
    tokenizer = bert_tokenizer(DistilBertTokenizer)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=_WIDTH,
        hidden_dim=2 * _WIDTH,
        n_layers=_LAYERS,
        n_heads=_HEADS,
        max_position_embeddings=_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        **_labels(),
    )
    _save_classifier(out, DistilBertForSequenceClassification(config), tokenizer)


def _build_roberta_cls(out: Path, size: str) -> None:
    tokenizer = roberta_tokenizer()
    config = _roberta(tokenizer, **_labels())
    _save_classifier(out, RobertaForSequenceClassification(config), tokenizer)


# --- image classification --------------------------------------------------------------------


def _build_vit_cls(out: Path, size: str) -> None:
    config = _vit(size)
    config.update(_labels())
    _save_classifier(out, ViTForImageClassification(config), _vit_processor(size))


def _convnext_processor() -> ConvNextImageProcessorPil:
    # Below 384 px, ConvNeXt's processor resizes to size / crop_pct and crops the centre.
    return ConvNextImageProcessorPil(size={"shortest_edge": _IMAGE}, crop_pct=0.875)


def _build_convnext_cls(out: Path, size: str) -> None:
    config = ConvNextConfig(
        patch_size=4,
        num_stages=2,
        hidden_sizes=[_WIDTH // 2, _WIDTH],
        depths=[1, 1],
        image_size=_IMAGE,
        **_labels(),
    )
    _save_classifier(out, ConvNextForImageClassification(config), _convnext_processor())


def _build_resnet_cls(out: Path, size: str) -> None:
    config = ResNetConfig(
        embedding_size=_WIDTH // 2,
        hidden_sizes=[_WIDTH // 2, _WIDTH],
        depths=[1, 1],
        layer_type="basic",
        **_labels(),
    )
    _save_classifier(out, ResNetForImageClassification(config), _convnext_processor())


_BUILDERS: dict[str, Callable[[Path, str], None]] = {
    "vit-gpt2": _build_vit_gpt2,
    "deit-gpt2": _build_deit_gpt2,
    "swin-gpt2": _build_swin_gpt2,
    "vit-bert": _build_vit_bert,
    "vit-roberta": _build_vit_roberta,
    "blip": _build_blip,
    "git": _build_git,
    "pix2struct": _build_pix2struct,
    "llava": _build_llava,
    "idefics3": _build_idefics3,
    "bert-cls": _build_bert_cls,
    "distilbert-cls": _build_distilbert_cls,
    "roberta-cls": _build_roberta_cls,
    "vit-cls": _build_vit_cls,
    "convnext-cls": _build_convnext_cls,
    "resnet-cls": _build_resnet_cls,
}
assert set(_BUILDERS) == set(KINDS)


def pickles_in(folder: Path) -> list[Path]:
    """The files under `folder` that may hold a pickle (.bin, .pt, .pkl...)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def build(kind: str, out: Path, size: str = "tiny", seed: int = 0) -> Path:
    """Build the `kind` model folder (see KINDS) into `out`, which must be absent or empty.

    Deterministic for a given seed. size="base" exists only for BASE_KINDS."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; sizes: {', '.join(SIZES)}")
    if size == "base" and kind not in BASE_KINDS:
        raise ValueError(f"{kind!r} has no base size; base kinds: {', '.join(sorted(BASE_KINDS))}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _BUILDERS[kind](out, size)
    if found := pickles_in(out):
        raise RuntimeError(f"pickle files written into {out}: {[p.name for p in found]}")
    return out
