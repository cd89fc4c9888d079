#!/usr/bin/env python3
"""Write the text-encoder fixtures (FluxPipeline's tokenizers, CLIPTextModel, T5EncoderModel).

Writes tests/fixtures/text_encoders/ (layout in its README.md):
  clip_openai_tokenizer/   OpenAI CLIP's real BPE (vocab.json + merges.txt, 49408 tokens) with
                           FLUX.1-style tokenizer_config.json / special_tokens_map.json
  clip_tiny/tokenizer/     the first CLIP_TINY_MERGES merges of the same BPE, config saved by
                           transformers 5
  clip_tiny/text_encoder/  tiny random CLIPTextModel (quick_gelu, legacy eos_token_id=2 like
                           FLUX.1's, checkpoint names with the older "text_model." prefix)
  clip_tiny_gelu/text_encoder/  another (gelu, eos_token_id = the real EOS id, bf16 weights,
                           a vocabulary larger than the tokenizer's)
  t5_tiny/tokenizer_2/     a SentencePiece unigram model trained here, FLUX.1-style config
                           (100 <extra_id_N> sentinels)
  t5_tiny/text_encoder_2/  tiny random T5EncoderModel (gated-gelu, T5 v1.1 like FLUX.1's)
  t5_tiny_relu/text_encoder_2/  another (relu, 8 buckets, max_distance 20, inner dim != d_model,
                           bf16 weights)
  prompts.json             the prompts
  random_strings.json      random strings (and runs of repeated characters) with the ids
                           transformers gives them
  expected.safetensors     token ids and the models' outputs, all computed by transformers

Run from the repository root (about a minute; needs the tools venv and the open_clip_torch wheel,
see README.md):
  nice -n 10 .venv-tools/bin/python tools/make_fixtures/make_text_encoder_fixtures.py

Deterministic: fixed seeds, one thread; a rerun rewrites every file byte for byte.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import os
import random
import shutil
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import sentencepiece as spm  # noqa: E402
from transformers import (  # noqa: E402
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "text_encoders"
# OpenAI's CLIP BPE ships in open_clip_torch's wheel (PyPI) as bpe_simple_vocab_16e6.txt.gz.
BPE_IN_WHEEL = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CLIP_TINY_MERGES = 2000

PROMPTS = [
    ("plain", "a photo of an astronaut riding a horse on mars"),
    ("punctuation", 'Hello, World!! It\'s a "test" -- (really?) [yes]; 100% #1 @home e-mail C++...'),
    ("unicode", "café naïve 東京 🚀"),
    ("long", " ".join(["A highly detailed oil painting of a quiet harbour town at dawn, with "
                       "fishing boats, gulls and warm light on the water."] * 24)),
    ("empty", ""),
    ("whitespace", "  many   spaces\n\nand\tnew lines\r\n  "),
    ("case_and_contractions", "DON'T Stop: we're GOING to the U.S.A. in 2024, aren't we? I'LL go"),
    ("special_tokens", "<|startoftext|>a cat</s> and <pad> <|endoftext|> <|ENDOFTEXT|> <extra_id_7>"),
    ("numbers", "3.14159 and 1,000,000 and ½ cup and x² + 10⁵"),
    ("decomposed_accents", "cafe\u0301 Zu\u0308rich \u00c5ngstro\u0308m"),
    ("emoji_sequences", "family 👨\u200d👩\u200d👧 portrait, 🇫🇷 flag, 👍🏽"),
]

# Random strings for the tokenizers: ASCII, Latin, Greek (capital sigma), CJK, emoji, odd
# whitespace, fullwidth and compatibility characters, special-token strings. The T5 set leaves
# out combining marks, U+200D and U+FEFF: their handling once differed between libsentencepiece
# and transformers. paradiff's T5 now runs transformers' own pipeline and agrees on them too
# (tests/fixtures/tokenizers covers them); the set is kept as it is so the fixtures stay the same.
RANDOM_ALPHABET = (list("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789.,!?'\"-_()[]{}:;/\\@#$%^&*+=~`|<>")
                   + list("éèüöäßçñ東京🚀ΣσςİıＡｂｃ①²½ﬁ\t\n\r\u00a0\u3000\u2028\u0085\u2003")
                   + ["</s>", "<pad>", "<unk>", "<extra_id_3>", " café ", "naïve", "<|endoftext|>",
                      "<|startoftext|>", "'s", "'ll", "'RE"])
RANDOM_ALPHABET_CLIP_ONLY = list("\u0301\u0308\u200d\ufeff")


def bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's byte symbols in CLIP's vocabulary order: the printable bytes (which keep their
    code point) first, then the other bytes, which get U+0100, U+0101, ... in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def find_openai_bpe() -> bytes:
    """The gzipped BPE list from an open_clip_torch wheel (pip download --no-deps open_clip_torch)."""
    candidates = sorted(glob.glob(str(REPO_ROOT / ".venv-tools" / "wheels" / "open_clip_torch-*.whl")))
    candidates += sorted(glob.glob("/tmp/oc/open_clip_torch-*.whl"))
    for wheel in candidates:
        with zipfile.ZipFile(wheel) as z:
            if BPE_IN_WHEEL in z.namelist():
                return z.read(BPE_IN_WHEEL)
    sys.exit("need open_clip_torch's wheel for OpenAI's BPE list; run\n"
             "  .venv-tools/bin/pip download --no-deps open_clip_torch==3.3.0 -d .venv-tools/wheels")


def write_clip_bpe(out_dir: Path, bpe_gz: bytes, num_merges: int) -> None:
    """vocab.json + merges.txt the way CLIP builds its vocabulary: the 256 byte symbols, the same
    with "</w>", one token per merge, then the two special tokens (OpenAI keeps 48894 merges)."""
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:num_merges + 1]]
    syms = bytes_to_unicode()
    vocab = syms + [s + "</w>" for s in syms] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "vocab.json", "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(out_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def write_flux_style_clip_config(out_dir: Path) -> None:
    """tokenizer_config.json / special_tokens_map.json as FLUX.1's tokenizer/ has them (the
    older transformers layout: added_tokens_decoder, <|startoftext|> normalized)."""
    def token(content, normalized):
        return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False,
                "single_word": False}
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            "49406": {**token("<|startoftext|>", True), "special": True},
            "49407": {**token("<|endoftext|>", False), "special": True},
        },
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    }
    special = {"bos_token": token("<|startoftext|>", True), "eos_token": token("<|endoftext|>", False),
               "pad_token": "<|endoftext|>", "unk_token": token("<|endoftext|>", False)}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def t5_corpus() -> list[str]:
    rng = random.Random(5)
    words = ("a an the photo of cat dog red blue green astronaut riding horse on mars city street "
             "at night painting by van gogh style portrait woman man old young tree forest river "
             "mountain snow sunset sky cloud beach ocean wave boat car train house castle dragon "
             "robot futuristic cyberpunk neon light shadow water fire ice stone wooden table chair "
             "window door flower garden bird fish apple orange banana coffee cup book paper pen "
             "glass bottle highly detailed 4k 8k hdr cinematic lighting sharp focus trending "
             "artstation digital art oil watercolor sketch drawing illustration anime realistic "
             "photorealistic render soft warm cold bright dark small large huge tiny beautiful "
             "happy sad running jumping flying sitting standing walking looking smiling holding "
             "wearing hat coat dress shirt shoes glasses with and in under over between behind "
             "near far above below harbour town dawn fishing boats gulls quiet").split()
    extra = ["café", "naïve", "résumé", "Zürich", "crème brûlée", "façade", "São Paulo", "Ελλάδα",
             "Москва", "don't", "it's", "we're", "I'll", "e-mail", "C++", "x86_64", "3.14", "1,000",
             "100%", "#hashtag", "@user", "(parentheses)", "[brackets]", "{braces}", '"quoted"',
             "'single'", "semi;colon", "a/b", "ÆØÅ", "über", "Straße"]
    lines = []
    for _ in range(4000):
        ws = [rng.choice(words) if rng.random() > 0.12 else rng.choice(extra)
              for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            ws[0] = ws[0].capitalize()
        s = " ".join(ws) + rng.choice([".", ",", "!", "?", "", "", " ...", ":", ";"])
        if rng.random() < 0.2:
            s += " " + str(rng.randint(0, 99999))
        lines.append(s)
    return lines


def write_t5_tokenizer(out_dir: Path) -> None:
    """spiece.model (SentencePiece unigram, T5's ids: <pad>=0, </s>=1, <unk>=2, nmt_nfkc) and a
    FLUX.1-style tokenizer_config.json (100 <extra_id_N> after the pieces, in reverse)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(t5_corpus()), model_writer=model, model_type="unigram",
        vocab_size=1000, character_coverage=1.0, pad_id=0, pad_piece="<pad>", eos_id=1,
        eos_piece="</s>", unk_id=2, unk_piece="<unk>", bos_id=-1, num_threads=1, minloglevel=2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spiece.model").write_bytes(model.getvalue())
    size = spm.SentencePieceProcessor(model_file=str(out_dir / "spiece.model")).get_piece_size()
    def token(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True}
    decoder = {"0": token("<pad>"), "1": token("</s>"), "2": token("<unk>")}
    for i in range(100):
        decoder[str(size + 99 - i)] = token(f"<extra_id_{i}>")
    config = {
        "add_prefix_space": True,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)],
        "clean_up_tokenization_spaces": True,
        "eos_token": "</s>",
        "extra_ids": 100,
        "legacy": True,
        "model_max_length": 512,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
        "unk_token": "<unk>",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn again (sorted by name): linear weights N(0, 1/fan_in), biases
    N(0, 0.1^2), norm weights 1 + N(0, 0.1^2), norm biases N(0, 0.1^2), embeddings N(0, 1),
    T5's relative attention bias N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if "norm" in name and name.endswith("weight"):
            v = 1 + 0.1 * torch.randn(p.shape, generator=g)
        elif name.endswith("bias") and p.dim() == 1:
            v = 0.1 * torch.randn(p.shape, generator=g)
        elif "relative_attention_bias" in name or "embed" in name or name == "shared.weight":
            v = torch.randn(p.shape, generator=g)
        elif p.dim() == 2:
            v = torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5
        else:
            raise SystemExit(f"unexpected parameter {name} {tuple(p.shape)}")
        with torch.no_grad():
            p.copy_(v)


def round_to_bf16(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def save_model(model: torch.nn.Module, out_dir: Path, dtype: torch.dtype, prefix: str = "") -> None:
    """save_pretrained, then (prefix) the checkpoint renamed as older transformers wrote it."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    copy.to(dtype).save_pretrained(out_dir)
    if prefix:
        from safetensors.torch import load_file
        path = out_dir / "model.safetensors"
        sd = load_file(path)
        save_file({prefix + k: v.contiguous() for k, v in sd.items()}, path, metadata={"format": "pt"})


def report(name: str, t: torch.Tensor) -> None:
    rms = t.float().pow(2).mean().sqrt().item()
    print(f"  {name}: {tuple(t.shape)} rms {rms:.3f} max|x| {t.abs().max().item():.3f}")
    assert torch.isfinite(t).all() and 0.05 < rms < 50, name


def relative_position_buckets(num_buckets: int, max_distance: int, span: int) -> torch.Tensor:
    from transformers.models.t5.modeling_t5 import T5Attention
    rel = torch.arange(-span, span + 1)
    return T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=num_buckets,
                                                 max_distance=max_distance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    expected: dict[str, torch.Tensor] = {}
    texts = [t for _, t in PROMPTS]
    (out / "prompts.json").write_text(
        json.dumps([{"name": n, "text": t} for n, t in PROMPTS], indent=1, ensure_ascii=False) + "\n")

    # --- tokenizers -------------------------------------------------------------------------
    bpe_gz = find_openai_bpe()
    openai_dir = out / "clip_openai_tokenizer"
    write_clip_bpe(openai_dir, bpe_gz, 49152 - 256 - 2)
    write_flux_style_clip_config(openai_dir)
    clip_openai = CLIPTokenizer.from_pretrained(openai_dir)
    assert len(clip_openai) == 49408 and clip_openai.pad_token_id == 49407

    tiny_tok_dir = out / "clip_tiny" / "tokenizer"
    write_clip_bpe(tiny_tok_dir, bpe_gz, CLIP_TINY_MERGES)
    clip_tiny_tok = CLIPTokenizer.from_pretrained(tiny_tok_dir, model_max_length=77)
    # transformers 5's tokenizer_config.json (no added_tokens_decoder); its tokenizer.json is
    # left out for size (the tests write one to check that path).
    clip_tiny_tok.save_pretrained(tiny_tok_dir)
    (tiny_tok_dir / "tokenizer.json").unlink()
    clip_tiny_tok = CLIPTokenizer.from_pretrained(tiny_tok_dir)

    t5_tok_dir = out / "t5_tiny" / "tokenizer_2"
    write_t5_tokenizer(t5_tok_dir)
    t5_tok = T5Tokenizer.from_pretrained(t5_tok_dir)
    assert t5_tok.convert_tokens_to_ids("<extra_id_0>") == 1099, "unexpected sentinel ids"

    def ids(tok, max_length):  # exactly FluxPipeline's call
        return tok(texts, padding="max_length", max_length=max_length, truncation=True,
                   return_tensors="pt").input_ids

    expected["clip_openai.input_ids"] = ids(clip_openai, 77)
    expected["clip_tiny.input_ids"] = ids(clip_tiny_tok, 77)
    expected["t5.input_ids_32"] = ids(t5_tok, 32)
    expected["t5.input_ids_512"] = ids(t5_tok, 512)
    long_index = [n for n, _ in PROMPTS].index("long")
    n_clip = len(clip_openai(texts[long_index]).input_ids)
    n_t5 = len(t5_tok(texts[long_index]).input_ids)
    print(f"long prompt: {n_clip} CLIP tokens, {n_t5} T5 tokens (untruncated)")
    assert n_clip > 77 and n_t5 > 512

    rng = random.Random(11)
    strings = []
    for i in range(600):
        clip_only = i % 2 == 1
        alphabet = RANDOM_ALPHABET + (RANDOM_ALPHABET_CLIP_ONLY if clip_only else [])
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        entry = {"text": s, "clip": clip_openai(s, add_special_tokens=False).input_ids}
        if not clip_only:
            entry["t5"] = t5_tok(s, add_special_tokens=False).input_ids
        strings.append(entry)
    for _ in range(100):  # runs of one character: unigram paths of equal score ("0"+"00", "00"+"0")
        s = "".join(rng.choice("0!.?ao-_=*1,l ") * rng.randint(1, 7) for _ in range(rng.randint(1, 6)))
        strings.append({"text": s, "clip": clip_openai(s, add_special_tokens=False).input_ids,
                        "t5": t5_tok(s, add_special_tokens=False).input_ids})
    (out / "random_strings.json").write_text(json.dumps(strings, ensure_ascii=False) + "\n")

    # --- CLIP text models -------------------------------------------------------------------
    custom = torch.full((3, 77), 7, dtype=torch.long)  # hand-made ids for the pooled position
    custom[0, :6] = torch.tensor([CLIP_TINY_MERGES + 512, 5, 2519, 9, CLIP_TINY_MERGES + 513, 11])
    custom[1, :4] = torch.tensor([CLIP_TINY_MERGES + 512, 2519, 2519, 3])  # no EOS at all
    custom[2, 40] = CLIP_TINY_MERGES + 513
    expected["clip_custom.input_ids"] = custom

    cases = [
        ("clip_tiny", 101, dict(vocab_size=2520, hidden_size=32,
                                intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                max_position_embeddings=77, hidden_act="quick_gelu",
                                layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2,
                                pad_token_id=1, projection_dim=32), torch.float32, "text_model."),
        ("clip_tiny_gelu", 102, dict(vocab_size=2520, hidden_size=24, intermediate_size=40,
                                     num_hidden_layers=1, num_attention_heads=3,
                                     max_position_embeddings=80, hidden_act="gelu",
                                     layer_norm_eps=1e-6, bos_token_id=CLIP_TINY_MERGES + 512,
                                     eos_token_id=CLIP_TINY_MERGES + 513, pad_token_id=1,
                                     projection_dim=24), torch.bfloat16, ""),
    ]
    for name, seed, config, dtype, prefix in cases:
        print(name)
        model = CLIPTextModel(CLIPTextConfig(**config)).eval()
        randomize(model, seed)
        if dtype == torch.bfloat16:
            round_to_bf16(model)
        save_model(model, out / name / "text_encoder", dtype, prefix)
        with torch.no_grad():
            for key, input_ids in (("", expected["clip_tiny.input_ids"]), ("custom_", custom)):
                o = model(input_ids)
                expected[f"{name}.{key}pooler_output"] = o.pooler_output.contiguous()
                report(f"{key}pooler_output", o.pooler_output)
                if key:  # every position, for the hand-made ids only (size)
                    expected[f"{name}.{key}last_hidden_state"] = o.last_hidden_state.contiguous()
                    report(f"{key}last_hidden_state", o.last_hidden_state)
        # reload check: the saved folder gives the same output
        reloaded = CLIPTextModel.from_pretrained(out / name / "text_encoder",
                                                 dtype=torch.float32).eval()
        with torch.no_grad():
            diff = (reloaded(custom).pooler_output - expected[f"{name}.custom_pooler_output"]).abs().max()
        assert diff <= 1e-5, diff

    # --- T5 encoders -------------------------------------------------------------------------
    t5_cases = [
        ("t5_tiny", 201, dict(vocab_size=1128, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                              num_heads=4, relative_attention_num_buckets=32,
                              relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                              layer_norm_epsilon=1e-6, dropout_rate=0.0), torch.float32),
        ("t5_tiny_relu", 202, dict(vocab_size=1100, d_model=16, d_kv=6, d_ff=24, num_layers=1,
                                   num_heads=3, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=20, feed_forward_proj="relu",
                                   layer_norm_epsilon=1e-5, dropout_rate=0.0), torch.bfloat16),
    ]
    for name, seed, config, dtype in t5_cases:
        print(name)
        model = T5EncoderModel(T5Config(**config)).eval()
        randomize(model, seed)
        if dtype == torch.bfloat16:
            round_to_bf16(model)
        save_model(model, out / name / "text_encoder_2", dtype)
        with torch.no_grad():
            h = model(expected["t5.input_ids_32"]).last_hidden_state.contiguous()
            expected[f"{name}.last_hidden_state_32"] = h
            report("last_hidden_state_32", h)
            if name == "t5_tiny":
                two = expected["t5.input_ids_512"][[0, long_index]]
                h = model(two).last_hidden_state.contiguous()
                expected[f"{name}.last_hidden_state_512"] = h  # prompts "plain" and "long"
                report("last_hidden_state_512", h)
        reloaded = T5EncoderModel.from_pretrained(out / name / "text_encoder_2",
                                                  dtype=torch.float32).eval()
        with torch.no_grad():
            diff = (reloaded(expected["t5.input_ids_32"]).last_hidden_state
                    - expected[f"{name}.last_hidden_state_32"]).abs().max()
        assert diff <= 1e-5, diff

    for nb, md in ((32, 128), (8, 20), (16, 64)):
        expected[f"t5.relative_position_bucket_{nb}_{md}"] = relative_position_buckets(nb, md, 600)

    save_file({k: v.contiguous() for k, v in sorted(expected.items())}, out / "expected.safetensors",
              metadata={"prompts": "prompts.json"})
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
