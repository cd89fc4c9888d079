"""Build the two tokenizers of the tiny FLUX pipeline from the caption vocabulary, offline.

* CLIP: byte-level BPE in the layout of OpenAI CLIP (vocab.json + merges.txt): the 256 byte
  symbols, the same 256 with the end-of-word marker "</w>", one entry per learned merge, then
  "<|startoftext|>" and "<|endoftext|>" as the last two ids. The merges are learned here with a
  plain BPE loop on the caption words until every caption word is a single token; any other text
  still tokenizes (it falls back to smaller pieces / single bytes).
* T5: a SentencePiece unigram model (spiece.model) trained with the `sentencepiece` package on
  the captions, with T5's special ids (<pad>=0, </s>=1, <unk>=2), no <extra_id_N> sentinels.
"""

from __future__ import annotations

import collections
import io
import json
import os
import string

import numpy as np

import shapes


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def corpus(seed: int, n: int = 20000) -> list[str]:
    rng = np.random.default_rng([seed, 7])
    return [shapes.sample_scene(rng).caption for _ in range(n)]


def learn_bpe_merges(captions: list[str]) -> list[tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: lexicographically
    smallest) until every word is one symbol. Words end with the CLIP end-of-word marker."""
    freq = collections.Counter(w for c in captions for w in c.split())
    words = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(freq)}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: collections.Counter = collections.Counter()
        for w, sym in words.items():
            for a, b in zip(sym, sym[1:]):
                pairs[(a, b)] += freq[w]
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, sym in words.items():
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            words[w] = tuple(out)


def write_clip_tokenizer_files(out_dir: str, captions: list[str]) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    byte_syms = list(bytes_to_unicode().values())
    vocab_list = byte_syms + [s + "</w>" for s in byte_syms]
    merges = learn_bpe_merges(captions)
    vocab_list += ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab_list)) == len(vocab_list)
    vocab = {t: i for i, t in enumerate(vocab_list)}
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return {"vocab_size": len(vocab), "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"], "num_merges": len(merges)}


def write_t5_spiece(path: str, captions: list[str], vocab_size: int = 160) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    uniq = sorted(set(captions))
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(uniq),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        # every printable ASCII character stays in the vocabulary so unseen words don't become <unk>
        required_chars=string.ascii_letters + string.digits + string.punctuation,
        pad_id=0, pad_piece="<pad>",
        eos_id=1, eos_piece="</s>",
        unk_id=2, unk_piece="<unk>",
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    # The unigram trainer keeps only a few whole words on such a tiny corpus. Add every caption
    # word as a whole-word piece "\u2581word" whose score equals the best trained piece's: any split
    # of a word into >= 2 pieces then scores lower (scores are negative log-probs), so each
    # caption word is exactly one token, while other text still tokenizes into sub-pieces/chars.
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    have = {p.piece for p in proto.pieces}
    best = max(p.score for p in proto.pieces if p.type == sp_pb2.ModelProto.SentencePiece.NORMAL)
    for w in shapes.caption_words():
        if "\u2581" + w not in have:
            p = proto.pieces.add()
            p.piece, p.score, p.type = "\u2581" + w, best, sp_pb2.ModelProto.SentencePiece.NORMAL
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def build(out_root: str, seed: int) -> dict:
    """Write <out_root>/clip/{vocab.json,merges.txt} and <out_root>/t5/spiece.model, load them with
    transformers, check every caption word is a single token, return info."""
    from transformers import CLIPTokenizer, T5Tokenizer

    caps = corpus(seed)
    clip_dir, t5_dir = os.path.join(out_root, "clip"), os.path.join(out_root, "t5")
    os.makedirs(t5_dir, exist_ok=True)
    info = write_clip_tokenizer_files(clip_dir, caps)
    write_t5_spiece(os.path.join(t5_dir, "spiece.model"), caps)

    clip_tok = CLIPTokenizer(vocab=os.path.join(clip_dir, "vocab.json"),
                             merges=os.path.join(clip_dir, "merges.txt"), model_max_length=77)
    # transformers 5 builds the (tokenizers-backed) T5Tokenizer from spiece.model only through
    # from_pretrained on a folder; constructing it with vocab_file= silently gives an empty vocab.
    t5_tok = T5Tokenizer.from_pretrained(t5_dir, extra_ids=0, model_max_length=512)
    words = shapes.caption_words()
    for w in words:
        ids = clip_tok(w, add_special_tokens=False).input_ids
        assert len(ids) == 1, (w, clip_tok.convert_ids_to_tokens(ids))
        ids5 = t5_tok(w, add_special_tokens=False).input_ids
        assert len(ids5) == 1, (w, t5_tok.convert_ids_to_tokens(ids5))
    info["t5_vocab_size"] = len(t5_tok)
    return {"clip": info, "clip_tokenizer": clip_tok, "t5_tokenizer": t5_tok}
