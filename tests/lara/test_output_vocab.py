"""The observed output vocabulary: seeded before training, forward's growth a loud safety net."""

import logging

import torch

from lara.output_vocab import OutputVocab


def test_growth_after_seeding_warns_once(caplog):
    vocab = OutputVocab("observed", 100, [1, 2])
    with caplog.at_level(logging.WARNING, logger="lara.output_vocab"):
        vocab.update(torch.tensor([3, -100]))  # not seeded (e.g. a policy trained by hand): silent growth
        assert vocab.ids == [1, 2, 3] and not caplog.records
        assert vocab.seed([5, 4, 3]) == 2 and vocab.ids == [1, 2, 3, 4, 5] and vocab.seeded
        vocab.update(torch.tensor([[4, -100]]))  # nothing new: silent
        assert not caplog.records
        vocab.update(torch.tensor([[6, -100]]))
        vocab.update(torch.tensor([7]))
    assert vocab.ids == [1, 2, 3, 4, 5, 6, 7]
    assert len(caplog.records) == 1 and "not in the seeded set" in caplog.records[0].getMessage()
    assert vocab.targets(torch.tensor([7, 1])).tolist() == [6, 0]  # column indices follow the grown set


def test_full_vocabulary_ignores_seeding():
    vocab = OutputVocab("full", 10, [1])
    assert vocab.seed([5]) == 0 and vocab.global_ids("cpu").tolist() == list(range(10))
