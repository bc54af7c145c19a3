"""Issue 29, case 1 as a user met it: two `lara eval` into one --out at once counted every episode
twice (12 lines for 6 episodes, 0/12 in the report). Now the second is refused while the first runs."""

import json
import subprocess
import time

import pytest

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_two_evals_into_one_out_record_each_episode_once(tmp_path, lara_cli):
    out = tmp_path / "eval"
    args = ["eval", "--policy", "noop", "--suite", "libero_object", "--tasks", "0", "--episodes", "3"]
    args += ["--max_steps", "30", "--workers", "1", "--out", str(out)]

    def start():
        return subprocess.Popen(
            lara_cli.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lara_cli.env
        )

    first = start()
    deadline = time.time() + 120
    while not (out / ".lara.lock").is_file() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # the second starts once the first holds the folder
    second = start()
    results = [(p.wait(timeout=600), *p.communicate()) for p in (first, second)]
    (code1, _, err1), (code2, _, err2) = results
    assert code1 == 0, err1
    assert code2 == 2 and f"in use by lara eval (PID {first.pid}" in err2 and "Traceback" not in err2
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["episode"] for line in lines) == [0, 1, 2]
    assert json.loads((out / "results.json").read_text())["suites"][0]["episodes"] == 3
    assert not (out / ".lara.lock").exists()  # released at the end
