"""Shared pytest set-up: the markers the test files use."""


def pytest_configure(config):
    config.addinivalue_line("markers", "subprocess: runs training in child processes (own ports and directories; "
                                       "safe under pytest -n)")
