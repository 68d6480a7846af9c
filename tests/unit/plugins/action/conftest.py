"""Run a controller action plugin as the worker does, with a connection that must stay unused."""
from unittest import mock

import pytest


@pytest.fixture
def run_controller_action():
    def run(action_class, args, task_vars=None, check_mode=False):
        task = mock.MagicMock()
        task.args = args
        task.async_val = 0
        task.check_mode = check_mode
        task.action = "sglang_rocm.fleet." + action_class.__module__.rsplit(".", 1)[-1]
        connection = mock.NonCallableMagicMock(name="connection")
        connection._shell.tmpdir = None
        action = action_class(task, connection, mock.MagicMock(), loader=None, templar=None,
                              shared_loader_obj=None)
        action._load_name = action_class.__module__  # as the plugin loader names it
        with mock.patch.object(action, "_execute_module",
                               side_effect=AssertionError("the action transferred a module")):
            result = action.run(task_vars=task_vars or {})
        assert connection.mock_calls == [], "the action used the connection: %s" % connection.mock_calls
        return result
    return run
