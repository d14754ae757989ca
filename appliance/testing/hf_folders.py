"""Small, standard Hugging Face model folders, built offline, to test a runtime on each family.

`build(kind, out)` writes a folder as a user would have it on disk after `save_pretrained`:
config.json, model.safetensors, generation_config.json where the family generates, and the
tokenizer, image processor or processor the family ships with, so that the Auto classes load it
from the folder alone (`local_files_only=True`). Nothing is downloaded: the configs are written
here, and the tokenizers (`hf_tokenizers.py`) are trained here with the `tokenizers` library on
a small built-in corpus of product descriptions (byte-level BPE for GPT-2, RoBERTa, Llama and
SmolLM styles, WordPiece for BERT styles, Unigram for Pix2Struct's T5 style; the last two are
derived from a BPE, as the WordPiece and Unigram trainers are not deterministic), wrapped in the
family's transformers tokenizer class with its special tokens. Every config's vocab_size and
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

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
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
    ResNetConfig,
    ResNetForImageClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizer,
    SwinConfig,
    TrOCRProcessor,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
)

from appliance.testing.hf_tokenizers import (
    POSITIONS,
    bert_tokenizer,
    blip_tokenizer,
    gpt2_tokenizer,
    llama_tokenizer,
    mute_invisible,
    roberta_tokenizer,
    smolvlm_tokenizer,
    t5_tokenizer,
    token_id,
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
_POSITIONS = POSITIONS

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_HALF = [0.5, 0.5, 0.5]
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]


def _generation(size: str, num_beams: int = 1, **ids: Any) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=MAX_NEW_TOKENS[size], num_beams=num_beams, **ids)


def _save_generating(
    out: Path,
    model: Any,
    tokenizer: Any,
    vocab_size: int,
    size: str,
    head: Any = None,
    num_beams: int = 1,
    **ids: Any,
) -> None:
    """Save a model that writes text: its invisible tokens muted (in `head`, default the model)
    and its generation config set."""
    mute_invisible(model if head is None else head, tokenizer, vocab_size)
    model.generation_config = _generation(size, num_beams, **ids)
    model.save_pretrained(out)


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
    _save_generating(
        out,
        model,
        tokenizer,
        decoder.vocab_size,
        size,
        num_beams=num_beams,
        decoder_start_token_id=start,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
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
    _save_generating(out, model, tokenizer, vocab_size, size, head=model.text_decoder, **ids)
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
    _save_generating(out, model, tokenizer, config.vocab_size, size, **ids)
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
    _save_generating(out, model, tokenizer, len(tokenizer), size, **ids)
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
    image_token = token_id(tokenizer, "<image>")
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
    _save_generating(out, model, tokenizer, len(tokenizer), size, **ids)
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
    image_token = token_id(tokenizer, "<image>")
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
    _save_generating(out, model, tokenizer, text.vocab_size, size, **ids)
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
