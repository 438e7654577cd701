"""amplitude-mock: a faithful mock of Amplitude's ingestion API, from Python.

The wheel puts the `amplitude-mock` binary on PATH (the virtualenv's `bin/`). This module starts
it on a free port and talks to its admin routes (`/__mock/`) with the standard library only;
`amplitude_mock.pytest_plugin` wraps it in the `amplitude_mock` pytest fixture.

    from amplitude_mock import AmplitudeMock

    with AmplitudeMock.start(api_keys=["KEY"]) as mock:
        ...  # point the sender at mock.http_v2_url
        assert mock.stats()["events_stored"] == 3

Behaviour, limits and admin routes: docs/fidelity.md and docs/faults.md of amplitude-kit.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["AmplitudeMock", "AmplitudeMockError", "binary_path", "to_toml"]

#: Environment variable naming the binary to run instead of the installed one.
BINARY_ENV = "AMPLITUDE_MOCK_BINARY"

_EXE = "amplitude-mock.exe" if os.name == "nt" else "amplitude-mock"
_LISTENING = "listening on "


class AmplitudeMockError(RuntimeError):
    """The mock could not start, an admin call failed, or the mock died."""


def binary_path() -> str:
    """The `amplitude-mock` binary: `$AMPLITUDE_MOCK_BINARY`, else the one this package's wheel
    installed (the interpreter's scripts directory), else the first on PATH."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return override
    candidates = [os.path.join(sysconfig.get_path("scripts"), _EXE)]
    try:
        user_scheme = f"{os.name}_user"
        candidates.append(os.path.join(sysconfig.get_path("scripts", user_scheme), _EXE))
    except KeyError:
        pass
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(_EXE)
    if found:
        return found
    raise AmplitudeMockError(
        f"no {_EXE} binary: not in {candidates[0]} nor on PATH; install the amplitude-mock "
        f"wheel or set {BINARY_ENV}"
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a TOML value")


def _toml_key(key: Any) -> str:
    key = str(key)
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else json.dumps(key)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _toml_table(out: List[str], path: List[str], table: Mapping[str, Any], header: Optional[str]) -> None:
    if header is not None:
        out.append(header)
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping) or _is_table_array(value):
            nested.append((key, value))
        else:
            out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        sub = path + [_toml_key(key)]
        name = ".".join(sub)
        if isinstance(value, Mapping):
            _toml_table(out, sub, value, f"[{name}]")
        else:
            for item in value:
                _toml_table(out, sub, item, f"[[{name}]]")


def to_toml(config: Mapping[str, Any]) -> str:
    """Writes a mock configuration (the `--config` file: `[limits]`, `[profile]`, `[[projects]]`,
    `[[faults]]`, `[ledger]`, ...) given as nested dicts and lists as TOML."""
    out: List[str] = []
    _toml_table(out, [], config, None)
    return "\n".join(out) + "\n"


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    # The mock is on loopback: never send its admin calls through an HTTP(S)_PROXY.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AmplitudeMock:
    """A running `amplitude-mock` process, and its admin routes as methods.

    Start it with `AmplitudeMock.start(...)`; stop it with `stop()` (or use it as a context
    manager). Every call raises `AmplitudeMockError` with the mock's answer when the mock refuses
    it (e.g. an invalid fault).
    """

    def __init__(self, process: subprocess.Popen, url: str, workdir: str, log_path: str, timeout: float):
        self._process = process
        self._workdir = workdir
        self._log_path = log_path
        self._timeout = timeout
        self._opener = _no_proxy_opener()
        self._stopped = False
        #: Base URL, e.g. `http://127.0.0.1:40123`.
        self.url = url
        #: The HTTP V2 endpoint (`/2/httpapi`): an SDK's `server_url`.
        self.http_v2_url = url + "/2/httpapi"
        #: The Batch endpoint (`/batch`).
        self.batch_url = url + "/batch"

    @classmethod
    def start(
        cls,
        *,
        api_keys: Iterable[str] = (),
        config: Union[Mapping[str, Any], str, None] = None,
        args: Sequence[str] = (),
        virtual_clock: Optional[int] = None,
        seed: Optional[int] = None,
        faults: Iterable[Mapping[str, Any]] = (),
        binary: Optional[str] = None,
        workdir: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        start_timeout: float = 30.0,
        timeout: float = 30.0,
    ) -> "AmplitudeMock":
        """Starts the mock on 127.0.0.1, port 0 (a free port), and waits for its
        `listening on http://HOST:PORT` line.

        api_keys: keys of US projects (`--api-key`); none: any key is accepted.
        config: the `--config` file, as a dict (written as TOML) or TOML text, e.g.
            `{"limits": {"eps_threshold_http_v2": 1}}` (docs/fidelity.md).
        args: more command-line arguments (`amplitude-mock --help`).
        virtual_clock: freeze the mock's clock at this many ms since the epoch; move it with
            `advance_clock`.
        seed: seed of the mock's random choices (probabilistic faults).
        faults: faults scheduled at start (`--fault`), e.g. `{"kind": "status", "status": 503}`.
        binary: the binary to run (default: `binary_path()`).
        workdir: where the config file and the mock's stderr log go (default: a new temp dir).
        env: extra environment variables for the mock (e.g. `{"RUST_LOG": "debug"}`).
        start_timeout: seconds to wait for the `listening on` line.
        timeout: seconds each admin call may take.
        """
        exe = binary or binary_path()
        workdir = workdir or tempfile.mkdtemp(prefix="amplitude-mock-")
        os.makedirs(workdir, exist_ok=True)
        cmd = [exe, "--bind", "127.0.0.1:0"]
        for key in api_keys:
            cmd += ["--api-key", key]
        if config is not None:
            config_path = os.path.join(workdir, "mock.toml")
            with open(config_path, "w", encoding="utf-8") as f:
                f.write(config if isinstance(config, str) else to_toml(config))
            cmd += ["--config", config_path]
        if virtual_clock is not None:
            cmd += ["--virtual-clock", str(int(virtual_clock))]
        if seed is not None:
            cmd += ["--seed", str(int(seed))]
        for fault in faults:
            cmd += ["--fault", json.dumps(fault)]
        cmd += list(args)
        log_path = os.path.join(workdir, "amplitude-mock.stderr.log")
        child_env = dict(os.environ)
        child_env.update(env or {})
        with open(log_path, "wb") as log:
            try:
                process = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=child_env,
                )
            except OSError as e:
                raise AmplitudeMockError(f"cannot run {exe}: {e}") from e
        lines: "queue.Queue[Optional[bytes]]" = queue.Queue()

        def read_stdout() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read_stdout, name="amplitude-mock-stdout", daemon=True).start()
        url = None
        try:
            while url is None:
                line = lines.get(timeout=start_timeout)
                if line is None:
                    break
                text = line.decode("utf-8", "replace").strip()
                if text.startswith(_LISTENING):
                    url = text[len(_LISTENING):].strip()
        except queue.Empty:
            pass
        if url is None:
            if process.poll() is None:
                process.kill()
            process.wait()
            with open(log_path, "rb") as f:
                stderr = f.read().decode("utf-8", "replace")
            raise AmplitudeMockError(
                f"{' '.join(cmd)} did not print 'listening on' within {start_timeout} s "
                f"(exit code {process.returncode}); its stderr:\n{stderr}"
            )
        return cls(process, url, workdir, log_path, timeout)

    # --- process ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def log_path(self) -> str:
        """The file the mock's stderr (its logs) goes to."""
        return self._log_path

    def stderr_text(self) -> str:
        """What the mock wrote on stderr so far."""
        try:
            with open(self._log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(cannot read {self._log_path}: {e})"

    def stop(self, timeout: float = 10.0) -> int:
        """Stops the mock (SIGTERM, then SIGKILL after `timeout` s) and returns its exit code.
        Raises `AmplitudeMockError` if it had died before being stopped."""
        if self._stopped:
            return self._process.returncode
        self._stopped = True
        died = self._process.poll()
        if died is None:
            if os.name == "nt":
                self._process.terminate()
            else:
                self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        if died is not None:
            raise AmplitudeMockError(f"the mock exited by itself with code {died}; its stderr:\n{self.stderr_text()}")
        return self._process.returncode

    def __enter__(self) -> "AmplitudeMock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- admin routes ------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, query: Optional[Mapping[str, Any]] = None) -> Any:
        url = self.url + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"content-type": "application/json"} if data is not None else {}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise AmplitudeMockError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise AmplitudeMockError(f"{method} {path}: {e}; the mock's stderr:\n{self.stderr_text()}") from None
        return json.loads(raw.decode("utf-8"))

    def stats(self) -> Dict[str, Any]:
        """`GET /__mock/stats`: requests by status, events received / stored / deduplicated /
        rejected by reason / throttled, property updates, faults injected."""
        return self._call("GET", "/__mock/stats")

    def events(
        self,
        *,
        user_id: Optional[str] = None,
        device_id: Optional[str] = None,
        insert_id: Optional[str] = None,
        api_key: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """`GET /__mock/events`: the stored events in storage order, each
        `{seq, request_id, project_id, server_upload_time, endpoint, event}`."""
        query = {"user_id": user_id, "device_id": device_id, "insert_id": insert_id, "api_key": api_key, "limit": limit}
        return self._call("GET", "/__mock/events", query=query)

    def requests(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """`GET /__mock/requests`: the request journal (status, outcome, events, stored,
        deduplicated, response body, fault), oldest first."""
        return self._call("GET", "/__mock/requests", query={"limit": limit})

    def duplicates(self) -> List[Dict[str, Any]]:
        """`GET /__mock/duplicates`: events answered 200 but not stored,
        `{request_id, index, insert_id, duplicate_of, at_ms}`."""
        return self._call("GET", "/__mock/duplicates")

    def property_drops(self) -> List[Dict[str, Any]]:
        """`GET /__mock/property_drops`: user-property updates dropped over the hourly cap."""
        return self._call("GET", "/__mock/property_drops")

    def user(self, *, user_id: Optional[str] = None, device_id: Optional[str] = None) -> Dict[str, Any]:
        """`GET /__mock/users`: one user's properties and counters."""
        return self._call("GET", "/__mock/users", query={"user_id": user_id, "device_id": device_id})

    def faults(self) -> Dict[str, Any]:
        """`GET /__mock/faults`: `{seed, faults, config_errors}`."""
        return self._call("GET", "/__mock/faults")

    def add_fault(self, *faults: Mapping[str, Any], **fault: Any) -> Dict[str, Any]:
        """`POST /__mock/faults`: schedules faults (docs/faults.md), given as dicts or as keyword
        arguments of one fault: `add_fault(kind="status", status=500, committed=True, count=1)`.
        Returns `{scheduled, faults}`."""
        items = [dict(f) for f in faults]
        if fault:
            items.append(fault)
        if not items:
            raise ValueError("add_fault: give a fault")
        return self._call("POST", "/__mock/faults", body=items)

    def clear_faults(self) -> Dict[str, Any]:
        """`DELETE /__mock/faults`."""
        return self._call("DELETE", "/__mock/faults")

    def clock(self) -> Dict[str, Any]:
        """`GET /__mock/clock`: `{now_ms, virtual_time, offset_ms}`."""
        return self._call("GET", "/__mock/clock")

    def advance_clock(self, ms: int) -> Dict[str, Any]:
        """`POST /__mock/clock {"advance_ms": ms}`: moves the mock's time forward (EPS windows,
        daily quota, the 7-day dedup window). Returns the clock."""
        return self._call("POST", "/__mock/clock", body={"advance_ms": int(ms)})

    def set_clock(self, ms: int) -> Dict[str, Any]:
        """`POST /__mock/clock {"set_ms": ms}`: jumps to this time, ms since the epoch."""
        return self._call("POST", "/__mock/clock", body={"set_ms": int(ms)})

    def silence(self, device_ids: Iterable[str]) -> Dict[str, Any]:
        """`POST /__mock/silenced`: these devices get the silenced 400."""
        return self._call("POST", "/__mock/silenced", body={"device_ids": list(device_ids)})

    def reset(self) -> Dict[str, Any]:
        """`POST /__mock/reset`: forgets every event, request, counter, limiter window,
        remembered insert_id and user property; the clock, configuration and scheduled faults
        stay."""
        return self._call("POST", "/__mock/reset")
