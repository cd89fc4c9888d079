#!/usr/bin/env python3
"""Write the tokenizer fixtures: every save format, and Qwen2Tokenizer.

Writes tests/fixtures/tokenizers/ (layout in its README.md):
  clip_json/       the tiny CLIP tokenizer of tests/fixtures/text_encoders/clip_tiny/tokenizer,
                   loaded and saved again by transformers 5 (tokenizer.json + tokenizer_config.json,
                   no vocab.json / merges.txt)
  t5_json/         the same for the T5 tokenizer of text_encoders/t5_tiny/tokenizer_2 (tokenizer.json
                   with the Precompiled charsmap, no spiece.model)
  qwen2/           a byte-level BPE trained here with the `tokenizers` library on a small corpus,
                   with Qwen2's normalizer, pre-tokenizer regex and added tokens, saved by
                   transformers' Qwen2Tokenizer (tokenizer.json + tokenizer_config.json)
  qwen2_legacy/    the same tokenizer as vocab.json + merges.txt + tokenizer_config.json with
                   added_tokens_decoder (the layout of Qwen's own repositories)
  cases.json       the corpus and, per tokenizer, the ids transformers gives (see README.md),
                   also for the two tokenizers of the bundled models/tiny-flux-shapes

Run from the repository root (a few seconds; the tools venv, no network):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_tokenizer_fixtures.py

Deterministic: fixed seeds; a rerun rewrites every file byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer  # noqa: E402
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "tokenizers"
TEXT_ENCODERS = REPO_ROOT / "tests" / "fixtures" / "text_encoders"

# diffusers' QwenImagePipeline (pipelines/qwenimage/pipeline_qwenimage.py): the prompt template,
# the number of its leading tokens the pipeline drops, and tokenizer_max_length.
QWEN_IMAGE_TEMPLATE = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
    "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}"
    "<|im_end|>\n<|im_start|>assistant\n")
QWEN_IMAGE_DROP = 34
QWEN_IMAGE_MAX_LENGTH = 1024

# Qwen2.5-VL's added tokens (ids after the BPE vocabulary, in this order); `special` as in its
# tokenizer_config.json.
QWEN_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
              ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
              ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
              ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
              ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
              ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False)]
QWEN_VOCAB_SIZE = 700

QWEN_PROMPTS = [
    "一只橘猫坐在窗台上，阳光明媚，背景是东京的街道。",
    "A coffee shop sign that reads \"Qwen Café 通义\" in neon, 4K, 16:9",
    "emoji 🚀🎨👨\u200d👩\u200d👧 and 👍🏽, flags 🇯🇵🇫🇷",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|> <tool_call>x</tool_call> <|IM_START|>",
    "\nstarts with a newline\r\n\r\nand CRLF  \t tabs   ",
    " ",
    "{braces} and {} and {0} in the prompt",
    "한국어 문장, русский текст, العربية, हिन्दी, ελληνικά, עברית",
    "Numbers 1234567890 ½ ² ①, café vs cafe\u0301, ﬁ ligature, ＡＢＣ fullwidth",
    "I'm sure it's THEY'RE we'VE you'll he'd ſ's",
]

# Random strings: ASCII, Latin, Greek, CJK, emoji, odd whitespace, compatibility characters,
# combining marks, special-token strings of every tokenizer.
RANDOM_ALPHABET = (list("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,!?'\"-_()[]{}:;/\\@#$%^&*+=~`|<>")
                   + list("éèüöäßçñ東京🚀ΣσςİıＡｂｃ①²½ﬁ\t\n\r\u00a0\u3000\u2028\u0085\u2003")
                   + list("\u0301\u0308\u200d\ufeff\u2581ſ한국어中文字🎨🏽")
                   + ["</s>", "<pad>", "<unk>", "<extra_id_3>", " café ", "naïve", "<|endoftext|>",
                      "<|startoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "'s", "'ll",
                      "'RE", "\r\n", " \n", "  "])


def qwen_corpus() -> list[str]:
    """Captions in several scripts for the tiny Qwen2 BPE."""
    rng = random.Random(7)
    words = ("a an the photo of cat dog red blue green astronaut riding horse on mars city street "
             "at night painting portrait woman man old young tree forest river mountain snow sunset "
             "describe image detailing color shape size texture quantity text spatial relationships "
             "objects background system user assistant highly detailed cinematic lighting").split()
    extra = ["一只猫", "阳光明媚", "东京的街道", "通义千问", "图像", "颜色", "形状", "背景", "한국어",
             "русский", "café", "naïve", "Zürich", "🚀", "🎨", "don't", "it's", "100%", "3.14",
             "(parentheses)", "\"quoted\"", "e-mail", "C++", "\n", "  "]
    lines = []
    for _ in range(3000):
        ws = [rng.choice(words) if rng.random() > 0.2 else rng.choice(extra)
              for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            ws[0] = ws[0].capitalize()
        lines.append(" ".join(ws) + rng.choice([".", ",", "!", "?", "", ":", "。", "，"]))
    return lines


def write_qwen2(legacy_dir: Path, json_dir: Path) -> None:
    """Trains the tiny byte-level BPE and writes both folders."""
    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=QWEN_VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(qwen_corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab, merges = model["vocab"], model["merges"]
    assert len(vocab) == QWEN_VOCAB_SIZE, len(vocab)

    legacy_dir.mkdir(parents=True)
    with open(legacy_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(legacy_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    decoder = {}
    for i, (content, special) in enumerate(QWEN_ADDED):
        decoder[str(len(vocab) + i)] = {"content": content, "lstrip": False, "normalized": False,
                                        "rstrip": False, "single_word": False, "special": special}
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [c for c, s in QWEN_ADDED if s and c != "<|endoftext|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (legacy_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    Qwen2Tokenizer.from_pretrained(legacy_dir).save_pretrained(json_dir)
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json", "chat_template.jinja"):
        (json_dir / name).unlink(missing_ok=True)


def resave(src: Path, dst: Path, cls) -> None:
    """Loads a folder with transformers 5 and saves it again (tokenizer.json format only)."""
    cls.from_pretrained(src).save_pretrained(dst)
    for name in ("vocab.json", "merges.txt", "spiece.model", "special_tokens_map.json"):
        (dst / name).unlink(missing_ok=True)
    assert (dst / "tokenizer.json").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for entry in out.iterdir():  # everything is rewritten but the hand-written README.md
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name != "README.md":
            entry.unlink()

    resave(TEXT_ENCODERS / "clip_tiny" / "tokenizer", out / "clip_json", CLIPTokenizer)
    resave(TEXT_ENCODERS / "t5_tiny" / "tokenizer_2", out / "t5_json", T5Tokenizer)
    write_qwen2(out / "qwen2_legacy", out / "qwen2")
    toks = {
        "clip_json": CLIPTokenizer.from_pretrained(out / "clip_json"),
        "clip_legacy": CLIPTokenizer.from_pretrained(TEXT_ENCODERS / "clip_tiny" / "tokenizer"),
        "t5_json": T5Tokenizer.from_pretrained(out / "t5_json"),
        "qwen2": Qwen2Tokenizer.from_pretrained(out / "qwen2"),
        "qwen2_legacy": Qwen2Tokenizer.from_pretrained(out / "qwen2_legacy"),
    }
    assert [type(t).__name__ for t in toks.values()] == [
        "CLIPTokenizer", "CLIPTokenizer", "T5Tokenizer", "Qwen2Tokenizer", "Qwen2Tokenizer"]

    prompts = [p["text"] for p in json.loads((TEXT_ENCODERS / "prompts.json").read_text())]
    rng = random.Random(23)
    strings = []
    for _ in range(400):
        strings.append("".join(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(0, 24))))
    for _ in range(60):  # runs of one character: unigram ties, whitespace runs, digit runs
        strings.append("".join(rng.choice("0!.?ao-_=*1,l \n\t東") * rng.randint(1, 7)
                               for _ in range(rng.randint(1, 6))))
    corpus = prompts + QWEN_PROMPTS + strings

    cases: dict = {"corpus": corpus, "num_prompts": len(prompts) + len(QWEN_PROMPTS),
                   "tokenize": {}, "flux": {}}
    for name, tok in toks.items():
        cases["tokenize"][name] = [tok(s, add_special_tokens=False).input_ids for s in corpus]
    # The bundled model's folders hold both formats; transformers reads their tokenizer.json.
    bundled = REPO_ROOT / "models" / "tiny-flux-shapes"
    for name, sub, cls in (("bundled_clip", "tokenizer", CLIPTokenizer),
                           ("bundled_t5", "tokenizer_2", T5Tokenizer)):
        tok = cls.from_pretrained(bundled / sub)
        cases["tokenize"][name] = [tok(s, add_special_tokens=False).input_ids for s in corpus]
    assert cases["tokenize"]["qwen2"] == cases["tokenize"]["qwen2_legacy"]
    assert cases["tokenize"]["clip_json"] == cases["tokenize"]["clip_legacy"]
    del cases["tokenize"]["clip_legacy"]  # the same ids; the C++ test checks both folders

    # FluxPipeline's calls (padding="max_length", truncation=True) on the prompts.
    texts = prompts + QWEN_PROMPTS
    cases["flux"]["clip_json"] = toks["clip_json"](texts, padding="max_length", max_length=77,
                                                   truncation=True).input_ids
    for n in (32, 512):
        cases["flux"][f"t5_json_{n}"] = toks["t5_json"](texts, padding="max_length", max_length=n,
                                                        truncation=True).input_ids

    # QwenImagePipeline's call: the template around each prompt, padding to the longest,
    # truncation at tokenizer_max_length + drop.
    qwen = toks["qwen2"]
    batches = [prompts[:4], QWEN_PROMPTS, ["", " ", "a cat"], [" ".join(["a red cat"] * 400)]]
    cases["qwen_image"] = {"template": QWEN_IMAGE_TEMPLATE, "drop": QWEN_IMAGE_DROP,
                           "max_length": QWEN_IMAGE_MAX_LENGTH, "batches": []}
    for batch in batches:
        enc = qwen([QWEN_IMAGE_TEMPLATE.format(p) for p in batch],
                   max_length=QWEN_IMAGE_MAX_LENGTH + QWEN_IMAGE_DROP, padding=True,
                   truncation=True)
        cases["qwen_image"]["batches"].append({"prompts": batch, "input_ids": enc.input_ids,
                                               "attention_mask": enc.attention_mask})
    assert len(cases["qwen_image"]["batches"][-1]["input_ids"][0]) == 1058

    # A T5 tokenizer.json in the layout transformers 4 wrote (Strip + Replace in the normalizer,
    # Metaspace alone as pre-tokenizer): transformers 5 ignores the declared pipeline and gives
    # the same ids. The C++ test writes this variant itself; checked here.
    t5_v4 = json.loads((out / "t5_json" / "tokenizer.json").read_text())
    t5_v4["normalizer"] = {"type": "Sequence", "normalizers": [
        t5_v4["normalizer"], {"type": "Strip", "strip_left": False, "strip_right": True},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]}
    t5_v4["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                              "prepend_scheme": "always", "split": True}
    v4_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "paradiff_t5_v4_tokenizer"
    shutil.rmtree(v4_dir, ignore_errors=True)
    shutil.copytree(out / "t5_json", v4_dir)
    (v4_dir / "tokenizer.json").write_text(json.dumps(t5_v4, ensure_ascii=False))
    t5_v4_tok = T5Tokenizer.from_pretrained(v4_dir)
    assert [t5_v4_tok(s, add_special_tokens=False).input_ids for s in corpus] == \
        cases["tokenize"]["t5_json"], "transformers now follows a declared T5 pipeline"
    shutil.rmtree(v4_dir)

    (out / "cases.json").write_text(json.dumps(cases, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB), {len(corpus)} strings")


if __name__ == "__main__":
    main()
