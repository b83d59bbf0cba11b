"""What a NeMo recipe trains on: the data object's event sequences, written on the laptop (the control
plane) in the format each recipe's data module reads, so the GPU spends its hours training, not parsing.

- ``next-event`` (a GPT pretraining recipe, ``PreTrainingDataModule``): a Megatron indexed dataset
  (``events.bin`` + ``events.idx``, one document per entity: its event ids in time order, then ``<eod>``)
  and the word-level tokenizer that names those ids (``tokenizer/``: ``tokenizer.json`` for the
  ``tokenizers`` library, ``tokenizer_config.json`` for ``AutoTokenizer.from_pretrained``), which also
  gives the model its vocabulary size, end-of-document and padding ids.
- ``finetune`` (an SFT recipe, ``FineTuningDataModule``): ``training.jsonl`` / ``validation.jsonl`` /
  ``test.jsonl`` of ``{"input", "output"}``: the events so far as text, and the next event.
- ``embedding`` (a retrieval fine-tune, ``CustomRetrievalDataModule``): ``retrieval.json``, a list of
  ``{"question", "pos_doc", "neg_doc"}``: a window of events, the event that follows it, and events that
  do not.

Entities go to training / validation / test by a hash of their index (90/5/5) so a sequence never
straddles splits, and the same data object always gives byte-identical files (``manifest.files`` holds
each file's sha256). The indexed-dataset layout follows Megatron-Core's ``indexed_dataset.py`` (header
``MMIDIDX\\x00\\x00``, version 1, dtype code, sequence and document counts, int32 lengths, int64 byte
pointers, int64 document indices); ``read_indexed_dataset`` reads it back for the tests and the launch
self-check, and the generated Modal app re-reads it with Megatron's own reader before training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}
PAD, UNK, EOD = "<pad>", "<unk>", "<eod>"
SPECIALS = (PAD, UNK, EOD)
PREFIX = "events"  # events.bin / events.idx
TOKENIZER_DIR = "tokenizer"
MAX_SEQ_LENGTH = 2048
FORMATS = {
    "next-event": "Megatron indexed dataset of event ids + word-level tokenizer (PreTrainingDataModule)",
    "finetune": "prompt/next-event JSONL, 90/5/5 by entity (FineTuningDataModule)",
    "embedding": "retrieval triplets: event window, next event, negatives (CustomRetrievalDataModule)",
}
CONTEXT_EVENTS = 32  # events of history in a finetune prompt / retrieval question
NEGATIVES = 4


def token_dtype(vocab_size: int) -> str:
    """Megatron's choice: uint16 ids while the vocabulary fits, int32 beyond."""
    return "uint16" if vocab_size < 65500 else "int32"


def vocabulary(tokens) -> list[str]:
    """Special tokens, then events by descending count (ties by name): stable for the same data."""
    from collections import Counter

    counts = Counter(map(str, tokens))
    return list(SPECIALS) + sorted(counts, key=lambda t: (-counts[t], t))


def token_texts(vocab: list[str]) -> list[str]:
    """How each event is spelled for a whitespace-splitting tokenizer: whitespace becomes U+2581, and
    a spelling that collides with an earlier one gets ``#k`` (vocab.json keeps the event names)."""
    seen, out = set(), []
    for v in vocab:
        t = re.sub(r"\s", "\u2581", v) or "\u2581"
        base, k = t, 1
        while t in seen:
            t, k = f"{base}#{k}", k + 1
        seen.add(t)
        out.append(t)
    return out


def split_of(i: int) -> str:
    """training / validation / test for entity ``i`` (90/5/5 by a hash: stable, no straddling)."""
    h = int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:4], "big") % 100
    return "training" if h < 90 else ("validation" if h < 95 else "test")


# ---- Megatron indexed dataset ----------------------------------------------------------------------

def write_indexed_dataset(prefix: str, docs, dtype: str) -> dict:
    """Write ``prefix.bin`` / ``prefix.idx``: one sequence per document (``docs``: integer arrays)."""
    import numpy as np

    lengths = np.array([len(d) for d in docs], dtype=np.int32)
    itemsize = np.dtype(dtype).itemsize
    pointers = np.zeros(len(docs), dtype=np.int64)
    if len(docs) > 1:
        pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64)) * itemsize
    document_indices = np.arange(len(docs) + 1, dtype=np.int64)  # each document ends after its one sequence
    with open(prefix + ".bin", "wb") as fh:
        for d in docs:
            fh.write(np.asarray(d, dtype=dtype).tobytes(order="C"))
    with open(prefix + ".idx", "wb") as fh:
        fh.write(INDEX_HEADER)
        fh.write(struct.pack("<Q", INDEX_VERSION))
        fh.write(struct.pack("<B", DTYPE_CODES[dtype]))
        fh.write(struct.pack("<Q", len(docs)))
        fh.write(struct.pack("<Q", len(document_indices)))
        fh.write(lengths.tobytes(order="C"))
        fh.write(pointers.tobytes(order="C"))
        fh.write(document_indices.tobytes(order="C"))
    return {"sequences": int(len(docs)), "tokens": int(lengths.sum()), "dtype": dtype}


def read_indexed_dataset(prefix: str) -> dict:
    """Read back what ``write_indexed_dataset`` wrote (checks the header, version and sizes)."""
    import numpy as np

    with open(prefix + ".idx", "rb") as fh:
        raw = fh.read()
    if raw[:9] != INDEX_HEADER:
        raise ValueError(f"{prefix}.idx: not a Megatron index (bad header)")
    (version,) = struct.unpack_from("<Q", raw, 9)
    (code,) = struct.unpack_from("<B", raw, 17)
    n_seq, n_doc = struct.unpack_from("<QQ", raw, 18)
    if version != INDEX_VERSION:
        raise ValueError(f"{prefix}.idx: index version {version}, expected {INDEX_VERSION}")
    dtype = next(k for k, v in DTYPE_CODES.items() if v == code)
    off = 34
    lengths = np.frombuffer(raw, dtype=np.int32, count=n_seq, offset=off)
    pointers = np.frombuffer(raw, dtype=np.int64, count=n_seq, offset=off + lengths.nbytes)
    docs = np.frombuffer(raw, dtype=np.int64, count=n_doc, offset=off + lengths.nbytes + pointers.nbytes)
    if len(raw) != off + lengths.nbytes + pointers.nbytes + docs.nbytes:
        raise ValueError(f"{prefix}.idx: {len(raw)} bytes, the counts in its header say otherwise")
    data = np.fromfile(prefix + ".bin", dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    if int(lengths.sum()) != len(data):
        raise ValueError(f"{prefix}.bin holds {len(data)} tokens, the index says {int(lengths.sum())}")
    seqs = [data[p // itemsize: p // itemsize + n] for p, n in zip(pointers.tolist(), lengths.tolist())]
    return {"dtype": dtype, "lengths": lengths, "pointers": pointers, "document_indices": docs, "sequences": seqs}


# ---- tokenizer -------------------------------------------------------------------------------------

def write_tokenizer(directory: str, vocab: list[str], *, seq_length: int) -> list[str]:
    """A word-level fast tokenizer over the event vocabulary (ids = positions in ``vocab``)."""
    os.makedirs(directory, exist_ok=True)
    texts = token_texts(vocab)
    added = [{"id": i, "content": texts[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i in range(len(SPECIALS))]
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(texts)}, "unk_token": UNK}}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": seq_length, "pad_token": PAD,
              "unk_token": UNK, "eos_token": EOD, "clean_up_tokenization_spaces": False}
    special = {"pad_token": PAD, "unk_token": UNK, "eos_token": EOD}
    files = {"tokenizer.json": spec, "tokenizer_config.json": config, "special_tokens_map.json": special}
    for name, obj in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, sort_keys=True, indent=1)
    return sorted(files)


# ---- the export ------------------------------------------------------------------------------------

def _sequences(seqs) -> list[list[str]]:
    toks = seqs.tokens
    return [toks[a:b].tolist() for a, b in zip(seqs.starts[:-1].tolist(), seqs.starts[1:].tolist())]


def seq_length_for(lengths) -> int:
    """The recipe's sequence length: the next power of two holding the 95th-percentile document (with
    its <eod>), between 64 and MAX_SEQ_LENGTH; longer documents are cut into windows by the data module."""
    import numpy as np

    p95 = int(np.percentile(np.asarray(lengths) + 1, 95)) if len(lengths) else 1
    n = 64
    while n < p95 and n < MAX_SEQ_LENGTH:
        n *= 2
    return n


def _as_text(events: list[str]) -> str:
    return "; ".join(events)


def export(objective: str, seqs, directory: str, *, seed: int = 0) -> dict:
    """Write the files for ``objective`` under ``directory``; returns the manifest (also manifest.json)."""
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    docs = _sequences(seqs)
    vocab = vocabulary(seqs.tokens)
    ids = {v: i for i, v in enumerate(vocab)}
    lengths = [len(d) for d in docs]
    manifest = {"format": None, "objective": objective, "entities": len(docs), "events": int(sum(lengths)),
                "vocab_size": len(vocab), "files": {}}
    if objective == "next-event":
        seq_length = seq_length_for(lengths)
        dtype = token_dtype(len(vocab))
        eod = ids[EOD]
        arrays = [np.array([ids[e] for e in d] + [eod], dtype=dtype) for d in docs]
        info = write_indexed_dataset(os.path.join(directory, PREFIX), arrays, dtype)
        write_tokenizer(os.path.join(directory, TOKENIZER_DIR), vocab, seq_length=seq_length)
        manifest.update({"format": "megatron_indexed_dataset", "prefix": PREFIX, "tokenizer_dir": TOKENIZER_DIR,
                         "seq_length": seq_length, "dtype": dtype, "tokens": info["tokens"],
                         "special_ids": {"pad": ids[PAD], "unk": ids[UNK], "eod": eod},
                         "split": "900,50,50"})  # Megatron's document split: train, validation, test
        with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as fh:
            json.dump(vocab, fh, ensure_ascii=False)
    elif objective == "finetune":
        out = {name: open(os.path.join(directory, f"{name}.jsonl"), "w", encoding="utf-8")
               for name in ("training", "validation", "test")}
        counts = dict.fromkeys(out, 0)
        longest = 0
        try:
            for i, d in enumerate(docs):
                split = split_of(i)
                for j in range(1, len(d)):  # every prefix of the sequence predicts its next event
                    ctx = d[max(0, j - CONTEXT_EVENTS):j]
                    rec = {"input": f"events so far: {_as_text(ctx)}\nnext event:", "output": f" {d[j]}"}
                    out[split].write(json.dumps(rec, ensure_ascii=False) + "\n")
                    counts[split] += 1
                    longest = max(longest, len(ctx))
        finally:
            for fh in out.values():
                fh.close()
        entities = {k: 0 for k in out}
        for i in range(len(docs)):
            entities[split_of(i)] += 1
        manifest.update({"format": "sft_jsonl", "dataset_root": ".", "examples": counts, "entities_per_split": entities,
                         "context_events": CONTEXT_EVENTS, "longest_context_events": longest})
    elif objective == "embedding":
        rng = np.random.default_rng(seed)
        events = vocab[len(SPECIALS):]
        want = min(NEGATIVES, len(events) - 1)
        n_examples = sum(max(0, n - 1) for n in lengths)
        cand = rng.integers(0, len(events), size=(n_examples, 3 * NEGATIVES)).tolist()  # drawn in one go
        records, k = [], 0
        for d in docs:
            for j in range(1, len(d)):
                pos, negs = d[j], []
                for c in cand[k]:
                    e = events[c]
                    if e != pos and e not in negs:
                        negs.append(e)
                        if len(negs) == want:
                            break
                while len(negs) < want:  # rare: too few distinct draws (a tiny vocabulary)
                    e = events[int(rng.integers(0, len(events)))]
                    if e != pos and e not in negs:
                        negs.append(e)
                k += 1
                records.append({"question": _as_text(d[max(0, j - CONTEXT_EVENTS):j]), "pos_doc": [pos], "neg_doc": negs})
        with open(os.path.join(directory, "retrieval.json"), "w", encoding="utf-8") as fh:
            json.dump(records, fh, ensure_ascii=False)
        manifest.update({"format": "retrieval_json", "data_root": "retrieval.json", "examples": len(records),
                         "negatives": NEGATIVES, "context_events": CONTEXT_EVENTS})
    else:
        raise ValueError(f"unknown objective {objective}")
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            if name == "manifest.json":
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as fh:
                manifest["files"][os.path.relpath(path, directory)] = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    manifest["files"] = dict(sorted(manifest["files"].items()))
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, sort_keys=True, indent=1)
    return manifest
