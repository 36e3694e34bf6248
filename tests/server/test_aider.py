"""A real coding agent against `fourbit serve`: aider-chat 0.86.2, one-shot (--message), on the
tiny random-weight model. The answer is gibberish; what must hold is the protocol: aider (through
litellm and the openai SDK 2.x) exits 0 with no API error, and the server finished its requests
with generated tokens. Both of aider's modes: streaming (its default) and --no-stream.

aider's pins conflict with tools/requirements.txt (openai, tokenizers), so it lives in its own
venv, FOURBIT_AIDER_VENV (default build/venv-aider), made from aider-requirements.txt by
`python test_aider.py --setup` (ctest runs that first and skips, code 77, when it fails: no
network). Offline at run time: litellm reads its bundled price map (LITELLM_LOCAL_MODEL_COST_MAP)
and aider's own model-info cache is pre-seeded in a temporary HOME so it fetches nothing.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = os.path.join(HERE, "aider-requirements.txt")
DEFAULT_VENV = os.path.join(HERE, "..", "..", "build", "venv-aider")
# Small, so each request ends fast (finish_reason "length"; aider then says it hit a token limit,
# its normal handling of a cut-off answer).
MAX_TOKENS = 64
# Text that means an API/protocol failure somewhere between aider and the server.
# (Specific ones: the model's random answer is printed too. A 400 for an over-long prompt prints
# the same "hit a token limit" notice as a cut-off answer; the server's metrics tell them apart.)
ERROR_MARKERS = ("Traceback (most recent call last)", "APIError", "APIConnectionError",
                 "BadRequestError", "NotFoundError", "AuthenticationError", "InternalServerError",
                 "ServiceUnavailableError", "UnprocessableEntityError", "litellm.", "Retrying in",
                 "HTTPSConnectionPool", "raw.githubusercontent.com")


def aider_venv() -> str:
    return os.path.abspath(os.environ.get("FOURBIT_AIDER_VENV") or DEFAULT_VENV)


def requirements_digest() -> str:
    with open(REQUIREMENTS, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def setup_venv() -> int:
    """Makes (or remakes, when aider-requirements.txt changed) the aider venv. 0 on success."""
    venv = aider_venv()
    stamp = os.path.join(venv, ".requirements-sha256")
    digest = requirements_digest()
    if os.path.exists(stamp) and open(stamp).read().strip() == digest:
        return 0
    shutil.rmtree(venv, ignore_errors=True)
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-r", REQUIREMENTS],
                       check=True, timeout=540)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        print(f"cannot install aider into {venv}: {error}", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        return 1
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    print(f"installed aider into {venv} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--setup"]:
    sys.exit(setup_venv())


import pytest  # noqa: E402  (after --setup, which needs nothing but the standard library)

from conftest import API_KEY, MAX_MODEL_LEN, server  # noqa: E402,F401  (the module's server fixture)


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def generated_tokens(server) -> float:
    return server.metrics().get('fourbit:generation_tokens_total{model_name="tiny"}', 0)


def finished_requests(server) -> float:
    samples = server.metrics()
    return sum(samples.get(f'fourbit:request_success_total{{finished_reason="{reason}",'
                           f'model_name="tiny"}}', 0) for reason in ("stop", "length"))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no_stream"])
def test_aider_one_shot_edit_request(server, stream):
    aider = os.path.join(aider_venv(), "bin", "aider")
    if not os.path.exists(aider):
        pytest.skip(f"no aider in {aider_venv()} (run: python {__file__} --setup)")
    tokens_before, finished_before = generated_tokens(server), finished_requests(server)
    with tempfile.TemporaryDirectory(prefix="fourbit_aider_") as workdir:
        home = os.path.join(workdir, "home")
        # aider fetches litellm's model table from GitHub unless its cache is fresh and not
        # empty, or the model is in --model-metadata-file (read first; also gives the limits).
        caches = os.path.join(home, ".aider", "caches")
        os.makedirs(caches)
        with open(os.path.join(caches, "model_prices_and_context_window.json"), "w") as f:
            json.dump({"fourbit-offline-placeholder": {}}, f)
        metadata = os.path.join(workdir, "model-metadata.json")
        with open(metadata, "w") as f:
            json.dump({"openai/tiny": {
                "max_input_tokens": MAX_MODEL_LEN, "max_tokens": MAX_TOKENS,
                "max_output_tokens": MAX_TOKENS, "input_cost_per_token": 0,
                "output_cost_per_token": 0, "litellm_provider": "openai", "mode": "chat"}}, f)
        repo = os.path.join(workdir, "repo")
        os.makedirs(repo)
        with open(os.path.join(repo, "hello.py"), "w") as f:
            f.write("def add(a, b):\n    return a + b\n")
        git(repo, "init", "-q")
        git(repo, "config", "user.email", "test@example.com")
        git(repo, "config", "user.name", "test")
        git(repo, "add", "hello.py")
        git(repo, "commit", "-q", "-m", "init")
        settings = os.path.join(workdir, "model-settings.yml")
        with open(settings, "w") as f:
            f.write("- name: openai/tiny\n  edit_format: whole\n  use_repo_map: false\n"
                    f"  extra_params:\n    max_tokens: {MAX_TOKENS}\n")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OPENAI_", "ANTHROPIC_", "AIDER_", "LITELLM_"))}
        env.update(HOME=home, LITELLM_LOCAL_MODEL_COST_MAP="True", TERM="dumb",
                   PYTHONIOENCODING="utf-8", NO_COLOR="1")
        command = [aider, "--model", "openai/tiny", "--openai-api-base", server.base_url + "/v1",
                   "--openai-api-key", API_KEY, "--model-settings-file", settings,
                   "--model-metadata-file", metadata,
                   "--edit-format", "whole", "--map-tokens", "0", "--no-check-update",
                   "--no-show-model-warnings", "--no-analytics", "--no-gitignore",
                   "--no-auto-commits", "--yes-always", "--no-pretty", "--no-fancy-input",
                   "--stream" if stream else "--no-stream",
                   "--message", "Add a docstring to add in hello.py", "hello.py"]
        started = time.monotonic()
        result = subprocess.run(command, cwd=repo, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, errors="replace", timeout=300)
        elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    print(f"aider ({'stream' if stream else 'no stream'}) ran {elapsed:.1f} s:\n{output}")
    assert result.returncode == 0, f"aider exited {result.returncode}:\n{output}"
    assert "Aider v0.86.2" in output, output
    for marker in ERROR_MARKERS:
        assert marker not in output, f"{marker!r} in aider's output:\n{output}\n{server.log()}"
    assert finished_requests(server) > finished_before, \
        f"no finished request on the server:\n{output}\n{server.log()}"
    assert generated_tokens(server) > tokens_before, \
        f"no generated tokens on the server:\n{output}\n{server.log()}"
