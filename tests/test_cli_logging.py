"""Successful commands print no warning a user cannot act on (issue 14, case 7)."""

import logging

from lara.scripts.cli import _quiet_filter


def _record(name: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_third_party_info_and_known_warnings_are_hidden():
    assert not _quiet_filter(_record("root", logging.INFO, "Using video codec: libsvtav1"))  # lerobot
    assert not _quiet_filter(_record("OpenGL.acceleratesupport", logging.INFO, "No OpenGL_accelerate module"))
    assert not _quiet_filter(
        _record(
            "accelerate.utils.other",
            logging.WARNING,
            "Removed shared tensor {'vlm.lm_head.weight'} while saving. This should be OK",
        )
    )
    assert not _quiet_filter(
        _record(
            "root",
            logging.WARNING,
            "'torchcodec' is not available in your platform, falling back to 'pyav' as a default decoder",
        )
    )


def test_own_messages_and_real_third_party_warnings_are_kept():
    assert _quiet_filter(_record("envs.evaluator", logging.INFO, "resuming: 3 episodes already in x"))
    assert _quiet_filter(_record("lara.utils.jsonl", logging.WARNING, "x: dropped 1 torn/invalid line(s)"))
    assert _quiet_filter(
        _record("transformers.modeling_utils", logging.WARNING, "some weights were not used")
    )


def test_verbose_flag_is_taken_before_the_command(capsys):
    from lara.scripts.cli import main

    assert main(["--verbose", "help"]) == 0
    assert "usage: lara [--verbose] <command>" in capsys.readouterr().out


def test_configure_logging_reads_the_verbosity_environment(monkeypatch):
    """LARA_VERBOSE (set by `lara --verbose`, inherited by workers and example scripts) turns the
    quiet filter off; without it the filter is on. One place decides: lara.utils.verbosity."""
    from lara.scripts.cli import configure_logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)  # restored after the test: configure_logging sets it
    for verbose_env, filtered in (("1", False), ("", True)):
        monkeypatch.setattr(root, "handlers", [])  # pytest's own handlers would make it a no-op
        monkeypatch.setenv("LARA_VERBOSE", verbose_env)
        monkeypatch.delenv("LARA_LOG_LEVEL", raising=False)
        configure_logging()
        (handler,) = root.handlers
        assert (_quiet_filter in handler.filters) is filtered
