"""pytest plugin of amplitude-mock (entry point `pytest11`): the `amplitude_mock` fixture.

    def test_sender(amplitude_mock):
        client = Amplitude("KEY", Config(server_url=amplitude_mock.http_v2_url))
        ...
        assert amplitude_mock.stats()["events_stored"] == 3

Each test gets its own mock process on a free port, stopped at teardown. Options (the keyword
arguments of `AmplitudeMock.start`: api_keys, config, args, virtual_clock, seed, faults, env)
come from the `amplitude_mock_options` fixture (override it in a conftest.py or a test module)
and then from `@pytest.mark.amplitude_mock(...)` markers, the closest marker winning:

    @pytest.mark.amplitude_mock(config={"limits": {"eps_threshold_http_v2": 1}})
    def test_throttled(amplitude_mock): ...

When a test fails, its report shows the mock's stderr (its logs) in a section of its own.
"""

from typing import Any, Dict, Iterator

import pytest

from . import AmplitudeMock

_MOCK = pytest.StashKey[AmplitudeMock]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amplitude-mock")
    group.addoption(
        "--amplitude-mock-binary",
        default=None,
        help="the amplitude-mock binary the fixture runs (default: $AMPLITUDE_MOCK_BINARY, "
        "else the one the wheel installed, else PATH)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "amplitude_mock(**options): options of the amplitude_mock fixture for this test "
        "(api_keys, config, args, virtual_clock, seed, faults, env; see AmplitudeMock.start)",
    )


@pytest.fixture
def amplitude_mock_options() -> Dict[str, Any]:
    """Options of the `amplitude_mock` fixture (keyword arguments of `AmplitudeMock.start`).
    Override this fixture to change them for a module or a directory."""
    return {}


@pytest.fixture
def amplitude_mock(
    request: pytest.FixtureRequest,
    amplitude_mock_options: Dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AmplitudeMock]:
    """A fresh amplitude-mock on 127.0.0.1 and a free port, stopped at teardown."""
    options = dict(amplitude_mock_options)
    # iter_markers yields the closest marker first: apply the farthest first.
    for marker in reversed(list(request.node.iter_markers("amplitude_mock"))):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.amplitude_mock takes keyword arguments only")
        options.update(marker.kwargs)
    binary = request.config.getoption("--amplitude-mock-binary")
    if binary and "binary" not in options:
        options["binary"] = binary
    options.setdefault("workdir", str(tmp_path_factory.mktemp("amplitude-mock")))
    mock = AmplitudeMock.start(**options)
    request.node.stash[_MOCK] = mock
    try:
        yield mock
    finally:
        mock.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    mock = item.stash.get(_MOCK, None)
    if mock is not None and report.failed:
        report.sections.append(
            (f"amplitude-mock stderr ({report.when}; {mock.log_path})", mock.stderr_text())
        )
