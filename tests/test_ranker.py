"""The learned ranker (indexer/ranker.py) on vectors made to the point: no model needed."""

import numpy as np

from indexer import ranker


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def twin_titles():
    """Four articles; 0 and 1 have near-identical titles and answers about different things."""
    basis = np.eye(16, dtype=np.float32)
    shared = basis[0]
    titles = unit([shared + 0.05 * basis[3], shared + 0.05 * basis[4], basis[5], basis[6]])
    answers = unit([shared + basis[1], shared + basis[2], basis[5] + basis[7],
                    basis[6] + basis[8]])
    queries = unit([shared + 0.6 * basis[1], shared + 0.6 * basis[2]])  # about 0's, 1's answer
    return titles, np.arange(4), answers, np.arange(4), queries


def test_answers_tell_apart_articles_whose_titles_are_alike():
    titles, owner, answers, answer_owner, queries = twin_titles()
    learned = ranker.train(titles, owner, 4, answers=(answers, answer_owner))
    first = [int(np.argmax(ranker.probabilities(q, *learned))) for q in queries]
    assert first == [0, 1]
    alone = ranker.train(titles, owner, 4)
    first = [int(np.argmax(ranker.probabilities(q, *alone))) for q in queries]
    assert first[0] == first[1]  # the titles alone cannot say which


def test_answers_are_left_out_when_they_would_take_the_work_past_the_limit(monkeypatch):
    titles, owner, answers, answer_owner, _ = twin_titles()
    monkeypatch.setattr(ranker, "MAX_WORK", len(titles) * 4)  # the questions fit, no more
    alone = ranker.train(titles, owner, 4)
    offered = ranker.train(titles, owner, 4, answers=(answers, answer_owner))
    assert np.array_equal(alone[0], offered[0])


def test_the_none_of_these_bar_is_set_by_questions_not_answers():
    titles, owner, answers, answer_owner, _ = twin_titles()
    assert ranker.train(titles, owner, 4)[2] == \
        ranker.train(titles, owner, 4, answers=(answers, answer_owner))[2]


def test_training_on_a_few_articles_settles(monkeypatch):
    """Four articles give each column a quarter of the gradient, not the 1/700th of a real
    knowledge base: the step must shrink, or the answers swing from one epoch count to the next."""
    titles, owner, answers, answer_owner, queries = twin_titles()
    firsts = []
    for epochs in (150, 300, 1000):
        monkeypatch.setattr(ranker, "EPOCHS", epochs)
        learned = ranker.train(titles, owner, 4, answers=(answers, answer_owner))
        probs = [ranker.probabilities(q, *learned) for q in queries]
        firsts.append([int(np.argmax(p)) for p in probs])
        assert min(p.max() for p in probs) > 0.9
    assert firsts == [[0, 1]] * 3
