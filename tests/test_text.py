from indexer.normalize import has_content, normalize, strip_fillers
from indexer.segment import Segmenter, char_grams, load_dictionary


def test_normalize_full_width_case_and_traditional():
    assert normalize("ＡＢＣ１２３　電費") == "abc123 电费"
    assert normalize("電費", to_simplified=False) == "電費"
    assert normalize("a\x00b\tc") == "a b c"


def test_fillers_are_dropped_but_intent_words_kept():
    assert strip_fillers("你好，请问停电了怎么报修") == "停电了怎么报修"
    assert strip_fillers("我想问一下电费为什么这么高") == "电费为什么这么高"
    assert strip_fillers("你好") == "你好"  # nothing else left: keep the text


def test_has_content():
    assert not has_content("？？。。!!  ")
    assert has_content("电")


def test_domain_words_stay_whole():
    plain = Segmenter()
    assert "网上国网" not in plain.words("用网上国网交费")
    seg = Segmenter(terms=["网上国网"])
    assert "网上国网" in seg.words("用网上国网交费")


def test_synonyms_expand_query_words():
    seg = Segmenter(synonyms=[["停电", "没电", "断电"]])
    words = seg.words("家里没电了")
    assert "没电" in words
    assert seg.expand(words) == ["停电", "断电"]


def test_stopwords_and_marks_are_dropped():
    seg = Segmenter()
    assert seg.words("的，了？！") == []


def test_char_grams():
    assert char_grams("停电了") == ["停", "电", "了", "停电", "电了"]
    assert char_grams("a b") == ["a", "b"]


def test_dictionary_files(tmp_path):
    (tmp_path / "userdict.txt").write_text("网上国网 100 n\n# note\n\n户号\n", encoding="utf-8")
    (tmp_path / "synonyms.txt").write_text("停电,没电 断电\n单独\n", encoding="utf-8")
    terms, groups = load_dictionary(tmp_path)
    assert terms == ["网上国网", "户号"]
    assert groups == [["停电", "没电", "断电"]]
