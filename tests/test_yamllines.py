"""Key lines and key paths: what the catalog's and the configuration's errors point at."""

from __future__ import annotations

import yaml

from remediator.yamllines import Issue, dotted, key_lines, line_of

DOC = """\
mode: auto
guards:
  freeze_windows:
    - start: "Fri 18:00"
      end: "Mon 08:00"
base: &b {x: 1}
merged:
  <<: *b
  y: 2
mode: approve
"""


def test_every_key_path_has_its_line_and_a_key_given_twice_is_reported() -> None:
    lines, duplicates = key_lines(yaml.compose(DOC))
    assert lines[("guards", "freeze_windows", 0, "end")] == 5
    assert lines[("merged", "y")] == 9 and ("merged", "<<") not in lines  # a merge key is no key
    assert [(d.loc, d.line, d.first) for d in duplicates] == [(("mode",), 10, 1)]
    assert lines[("mode",)] == 10  # the value YAML keeps is the later one


def test_a_missing_path_falls_back_to_its_nearest_parent() -> None:
    lines, _ = key_lines(yaml.compose(DOC))
    assert line_of(("guards", "freeze_windows", 0, "name"), lines) == 4
    assert line_of(("nothing", "here"), lines) == 1 and line_of(("nothing",), lines, root=False) == 0


def test_paths_and_issues_read_as_a_person_looks_for_them() -> None:
    assert dotted(("guards", "freeze_windows", 0, "start")) == "guards.freeze_windows[0].start"
    assert str(Issue("c.yaml", 4, "guards.freeze_windows[0]", "bad")) == "c.yaml:4: guards.freeze_windows[0]: bad"
    assert str(Issue("c.yaml", 0, "", "cannot read")) == "c.yaml: cannot read"
