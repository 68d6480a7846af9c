# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""validate: every stage's input checked on the controller before any host is changed (docs in
modules/validate.py; the rules in module_utils/_validate.py).

An action plugin with no connection: site.yml runs it first, for every host, before the stage
roles are included, so their defaults are not yet variables of the play. It resolves each
variable the checks read as the role will see it: the host's own value (inventory, play vars,
extra vars), else the default in the defining role's defaults/main.yml, templated with the
host's variables. Values are never returned: the API key is one of them.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.collections import is_sequence
from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._validate import (
    STAGES,
    VARIABLES,
    Problem,
    check_inputs,
)

ROLES_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "roles"))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("stages",))

    def _defaults(self, stages):
        """Variable name -> (role directory, raw default) for common and the stages' roles."""
        found = {}
        for role in ("common",) + tuple(stages):
            path = os.path.join(ROLES_DIR, role, "defaults", "main.yml")
            if os.path.exists(path):
                data = self._loader.load_from_file(path, trusted_as_template=True) or {}
                found.update({name: (os.path.dirname(os.path.dirname(path)), value) for name, value in data.items()})
        return found

    def _resolve(self, task_vars, stages):
        """(values, problems): each checked variable as its role will see it."""
        defaults = self._defaults(stages)
        known = {name: value for name, (_role, value) in defaults.items()}
        known.update(task_vars)
        values, problems = {}, []
        for name in VARIABLES:
            if name in task_vars:
                raw, role_path = task_vars[name], None
            elif name in defaults:
                role_path, raw = defaults[name]
            else:
                continue
            available = dict(known, role_path=role_path) if role_path else known
            try:
                values[name] = self._templar.copy_with_new_env(available_variables=available).template(raw)
            except AnsibleError as exc:
                problems.append(Problem(name, "a value that does not template (%s)" % exc.message,
                                        "a value, or a template of defined variables", "define what it refers to"))
        return values, problems

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        stages = self._task.args.get("stages", list(STAGES))
        if isinstance(stages, str) or not is_sequence(stages) or set(stages) - set(STAGES):
            return dict(result, failed=True,
                        msg="validate: stages (sglang_stages) must be a list of %s, got %r" % (", ".join(STAGES), stages))
        stages = tuple(stages)
        values, problems = self._resolve(task_vars, stages)
        problems.extend(check_inputs(values, stages))
        host = task_vars.get("inventory_hostname", "localhost")
        result.update(changed=False, stages=list(stages), checked=sorted(values))
        if problems:
            lines = [problem.describe(host) for problem in problems]
            result.update(failed=True, problems=lines,
                          msg="invalid input, nothing was changed on %s:\n- %s" % (host, "\n- ".join(lines)))
        return result
