"""The YAML and CSV readers: byte fixtures in, rows or errors naming file, line and field out."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from monitor.config.models import InventoryDevice, StaffPeriod
from monitor.config.readers import (
    MAX_FILE_BYTES,
    UnreadableFile,
    read_bounded,
    read_csv_rows,
    read_inventory,
    read_logins,
    read_staff_periods,
    read_yaml,
)
from monitor.errors import ConfigError

SCHOOLS = {"oak-primary", "ash-secondary"}
INVENTORY_HEADER = b"mac,asset_tag,school,kind,owner,groups\n"
STAFF_HEADER = b"staff_id,week,weekday,period,kind\n"


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write bytes to a file in the working directory, so messages name it as `name:line`."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, content: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return write


def _device(mac: str, tag: str, school: str = "oak-primary", kind: str = "laptop",
            owner: str | None = "S1", groups: tuple[str, ...] = ()) -> InventoryDevice:
    return InventoryDevice(mac=mac, asset_tag=tag, school=school, kind=kind, owner=owner, groups=groups)


# --- YAML -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"trust:\n  name: x\n", {"trust": {"name": "x"}}),
        (b"- 1\n- 2\n", [1, 2]),
        (b"", None),
        ("name: Ysgol Gymraeg \u0175\n".encode(), {"name": "Ysgol Gymraeg \u0175"}),
    ],
)
def test_read_yaml(write, content, expected):
    assert read_yaml(write("trust.yaml", content)) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"trust:\n  name: x\n  timezone: [unclosed\n",
         "trust.yaml:4:1: not valid YAML: did not find expected ',' or ']'"),
        (b"a: [1\n", "trust.yaml:2:1: not valid YAML: did not find expected ',' or ']'"),
        # libyaml and PyYAML word the problem differently: the place and the start are what count
        (b"a: b: c\n", "trust.yaml:1:5: not valid YAML: mapping values are not allowed"),
        (b"a: 1\nname: \xff\n", "trust.yaml:2: cannot read: not UTF-8 text"),
    ],
)
def test_read_yaml_errors_name_file_and_line(write, content, expected):
    with pytest.raises(ConfigError) as info:
        read_yaml(write("trust.yaml", content))
    [error] = info.value.errors
    assert error.startswith(expected), error


def test_read_yaml_missing_file(write):
    with pytest.raises(ConfigError) as info:
        read_yaml(Path("nope.yaml"))
    assert info.value.errors == ["nope.yaml: no such file"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"retention_days: 90\nstore: {}\nretention_days: 30\n",
         ["trust.yaml:3: retention_days: key listed twice (first on line 1); the last would silently win"]),
        (b"schools:\n  - id: a\n    zones: []\n    id: b\n  - {id: c, id: c}\n",
         ["trust.yaml:4: schools[0].id: key listed twice (first on line 2); the last would silently win",
          "trust.yaml:5: schools[1].id: key listed twice (first on line 5); the last would silently win"]),
        (b"a: &a [*a]\n", ["trust.yaml: aliases expand to more than 1,000,000 values (an alias of its own "
                           "parent, or aliases of aliases)"]),
        (b"[" * 5000, None),  # nested too deeply for the parser: one line, whatever the parser says
    ],
    ids=["top level", "every duplicate, with its path", "loop", "deep"],
)
def test_read_yaml_refuses_what_would_load_a_different_rule(write, content, expected):
    with pytest.raises(ConfigError) as info:
        read_yaml(write("trust.yaml", content))
    if expected is not None:
        assert info.value.errors == expected
    assert all("\n" not in line and line.startswith("trust.yaml") for line in info.value.errors)


# --- bounded reads: a config must never hang or exhaust the daemon ---------------------------


def _fifo(path) -> None:
    os.mkfifo(path)  # nobody writes: a plain open() would block for ever


def _socket(path) -> None:
    socket.socket(socket.AF_UNIX).bind(str(path))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"x" * (MAX_FILE_BYTES + 1)),
         "larger than 16 MiB (is this the right file?)"),
        (lambda p: p.mkdir(), "not a regular file (a folder)"),
        (_fifo, "not a regular file (a device, FIFO or socket)"),
        (_socket, "No such device or address"),  # a socket cannot even be opened
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file (a device, FIFO or socket)"),
        (lambda p: None, "No such file or directory"),
    ],
    ids=["too big", "folder", "fifo", "socket", "/dev/zero", "missing"],
)
def test_read_bounded_refuses_what_is_not_a_small_regular_file(tmp_path, make, reason):
    path = tmp_path / "devices.csv"
    make(path)
    with pytest.raises(UnreadableFile) as info:
        read_bounded(path)
    assert info.value.reason == reason


def test_read_bounded_reads_a_file_at_the_limit(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, limit=100) == b"x" * 100


def test_read_yaml_of_a_device_is_one_line(write):
    with pytest.raises(ConfigError) as info:
        read_yaml(Path("/dev/zero"))
    assert info.value.errors == ["/dev/zero: cannot read: not a regular file (a device, FIFO or socket)"]


# --- CSV rows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\n1,2\n", [(2, {"a": "1", "b": "2"})]),
        (b"\xef\xbb\xbfa,b\r\n1,2\r\n", [(2, {"a": "1", "b": "2"})]),  # Excel's BOM and CRLF
        (b" a , b \n 1 , 2 \n", [(2, {"a": "1", "b": "2"})]),  # cells and headers stripped
        (b"a,b\n\n,\n1,2\n", [(4, {"a": "1", "b": "2"})]),  # blank rows skipped, lines still counted
        (b'a,b\n"x\ny",2\n3,4\n', [(3, {"a": "x\ny", "b": "2"}), (4, {"a": "3", "b": "4"})]),
        (b"a,b,c\n1,2\n", [(2, {"a": "1", "b": "2", "c": ""})]),  # short rows padded
        (b"a,b\n", []),
    ],
)
def test_read_csv_rows(write, content, expected):
    assert read_csv_rows(write("x.csv", content), ["a", "b"], "test file") == (expected, [])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,c\n1,2\n", "x.csv:1: test file header lacks column(s) b"),
        (b"", "x.csv:1: test file header lacks column(s) a, b"),
    ],
)
def test_read_csv_rows_header_errors(write, content, expected):
    assert read_csv_rows(write("x.csv", content), ["a", "b"], "test file") == ([], [expected])


def test_read_csv_rows_missing_file(write):
    rows = read_csv_rows(Path("x.csv"), ["a"], "test file")
    assert rows == ([], ["x.csv: cannot read test file: No such file or directory"])


LONG = 128 * 1024 + 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a,b\n1,2\n3," + b"x" * LONG + b"\n", "x.csv:3: b: longer than 128 KiB (is this the right file?)"),
        (b"a,b\n" + b"x" * LONG + b",2\n", "x.csv:2: a: longer than 128 KiB (is this the right file?)"),
        (b"a,b\n1,\"" + b"x\n" * LONG, "x.csv:2: a field: longer than 128 KiB (is this the right file?)"),
        (b"a," + b"x" * LONG + b"\n", "x.csv:1: a field: longer than 128 KiB (is this the right file?)"),
        (b"a,b\n\n\n3," + b"x" * LONG + b"\n", "x.csv:4: b: longer than 128 KiB (is this the right file?)"),
    ],
    ids=["last column", "first column", "quoted over many lines", "header", "after blank lines"],
)
def test_read_csv_rows_refusals_name_line_and_column(write, content, expected):
    assert read_csv_rows(write("x.csv", content), ["a", "b"], "test file") == ([], [expected])


def test_read_csv_rows_of_a_device(write):
    assert read_csv_rows(Path("/dev/zero"), ["a"], "device inventory") == (
        [], ["/dev/zero: cannot read device inventory: not a regular file (a device, FIFO or socket)"])


def test_read_csv_rows_non_utf8_is_reported(write):
    """A cp1252 export from the school's MIS is an error naming the file and line, not a traceback."""
    rows, errors = read_csv_rows(write("x.csv", b"a\nok\nCaf\xe9\n"), ["a"], "test file")
    assert rows == []
    assert errors == ["x.csv:3: cannot read test file: not UTF-8 text (save it as CSV UTF-8)"]


# --- device inventory -----------------------------------------------------------------------


GOOD_INVENTORIES = [
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,\n", [_device("3c:52:82:10:00:01", "T1")]),
    (b"3C-52-82-10-00-01,T1,oak-primary,laptop,S1,\n", [_device("3c:52:82:10:00:01", "T1")]),
    (b"3c52.8210.0001,T1,oak-primary,,,\n",
     [_device("3c:52:82:10:00:01", "T1", kind="unknown", owner=None)]),
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,teachers; leadership|media\n",
     [_device("3c:52:82:10:00:01", "T1", groups=("teachers", "leadership", "media"))]),
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,\n3c:52:82:20:00:01,T2,ash-secondary,tablet,S2,\n",
     [_device("3c:52:82:10:00:01", "T1"),
      _device("3c:52:82:20:00:01", "T2", "ash-secondary", "tablet", "S2")]),
]


@pytest.mark.parametrize(("rows", "expected"), GOOD_INVENTORIES)
def test_read_inventory(write, rows, expected):
    assert read_inventory(write("devices.csv", INVENTORY_HEADER + rows), SCHOOLS) == (expected, [])


def test_read_inventory_without_optional_columns(write):
    path = write("devices.csv", b"mac,asset_tag,school,kind\n3c:52:82:10:00:01,T1,oak-primary,laptop\n")
    assert read_inventory(path, SCHOOLS) == ([_device("3c:52:82:10:00:01", "T1", owner=None)], [])


BAD_INVENTORIES = [
    (b"not-a-mac,T1,oak-primary,laptop,S1,\n", "devices.csv:2: mac: 'not-a-mac' is not a MAC address"),
    (b"3c:52:82:10:00:01,T1,elm-primary,laptop,S1,\n",
     "devices.csv:2: school: 'elm-primary' is not a configured school"),
    (b"3c:52:82:10:00:01,,oak-primary,laptop,S1,\n", "devices.csv:2: asset_tag: empty"),
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,\n3C-52-82-10-00-01,T2,oak-primary,laptop,S1,\n",
     "devices.csv:3: mac: 3c:52:82:10:00:01 already listed on line 2"),
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,\n3c:52:82:10:00:02,T1,oak-primary,laptop,S1,\n",
     "devices.csv:3: asset_tag: 'T1' already listed on line 2"),
    (b"3c:52:82:10:00:01,T1,oak-primary,laptop,S1,\n\n3c:52:82:10:00:01,T2,oak-primary,laptop,S1,\n",
     "devices.csv:4: mac: 3c:52:82:10:00:01 already listed on line 2"),
]


@pytest.mark.parametrize(("rows", "expected"), BAD_INVENTORIES)
def test_read_inventory_errors_name_file_line_and_field(write, rows, expected):
    _, errors = read_inventory(write("devices.csv", INVENTORY_HEADER + rows), SCHOOLS)
    assert errors == [expected]


def test_read_inventory_keeps_the_good_rows_and_lists_every_bad_one(write):
    rows = (b"bad,T1,oak-primary,laptop,S1,\n3c:52:82:10:00:02,T2,oak-primary,laptop,S1,\n"
            b"3c:52:82:10:00:03,T3,nowhere,laptop,S1,\n")
    devices, errors = read_inventory(write("devices.csv", INVENTORY_HEADER + rows), SCHOOLS)
    assert devices == [_device("3c:52:82:10:00:02", "T2")]
    assert errors == ["devices.csv:2: mac: 'bad' is not a MAC address",
                      "devices.csv:4: school: 'nowhere' is not a configured school"]


def test_read_inventory_header(write):
    path = write("devices.csv", b"mac,asset,school,kind\n")
    expected = "devices.csv:1: device inventory header lacks column(s) asset_tag"
    assert read_inventory(path, SCHOOLS) == ([], [expected])


# --- staff timetable ------------------------------------------------------------------------


def _period(week: str | None, weekday: str, kind: str = "contact") -> StaffPeriod:
    return StaffPeriod(staff_id="S1", week=week, weekday=weekday, period="P1", kind=kind)


GOOD_STAFF_ROWS = [
    (b"S1,A,monday,P1,contact\n", _period("A", "monday")),
    (b"S1,b,Tuesday,P1,Non-Contact\n", _period("B", "tuesday", "non-contact")),
    (b"S1,,Wed,P1,contact\n", _period(None, "wednesday")),
    (b"S1,,THU,P1,contact\n", _period(None, "thursday")),
    (b"S1,,sunday,P1,contact\n", _period(None, "sunday")),
]


@pytest.mark.parametrize(("row", "expected"), GOOD_STAFF_ROWS)
def test_read_staff_periods(write, row, expected):
    assert read_staff_periods(write("staff-timetable.csv", STAFF_HEADER + row)) == ([expected], [])


BAD_STAFF_ROWS = [
    (b"S1,A,monday,P1,teaching\n",
     "staff-timetable.csv:2: kind: 'teaching' is not valid: Input should be 'contact' or 'non-contact'"),
    (b"S1,C,monday,P1,contact\n", "staff-timetable.csv:2: week: 'C' is not A, B or empty"),
    (b"S1,,funday,P1,contact\n",
     "staff-timetable.csv:2: weekday: 'funday' is not valid: Input should be 'monday', 'tuesday', "
     "'wednesday', 'thursday', 'friday', 'saturday' or 'sunday'"),
    (b"S1,A,monday,P1\n",
     "staff-timetable.csv:2: kind: '' is not valid: Input should be 'contact' or 'non-contact'"),
    # the same person's period twice: the second row would silently win
    (b"S1,A,monday,P1,contact\nS1,a,Mon,P1,non-contact\n",
     "staff-timetable.csv:3: S1 monday 'P1' (week A) already listed on line 2"),
    (b"S1,,monday,P1,contact\nS1,,monday,P1,contact\n",
     "staff-timetable.csv:3: S1 monday 'P1' already listed on line 2"),
]


@pytest.mark.parametrize(("row", "expected"), BAD_STAFF_ROWS)
def test_read_staff_periods_errors_name_file_line_and_field(write, row, expected):
    _, errors = read_staff_periods(write("staff-timetable.csv", STAFF_HEADER + row))
    assert errors == [expected]


def test_read_staff_periods_header(write):
    path = write("staff-timetable.csv", b"staff_id,weekday,period,kind\n")
    expected = "staff-timetable.csv:1: staff timetable header lacks column(s) week"
    assert read_staff_periods(path) == ([], [expected])


# --- login map ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"login,staff_id\njsmith,S1\n", {"jsmith": "S1"}),
        (b"login,staff_id\nJSmith,S1\nA.Patel,S2\n", {"jsmith": "S1", "a.patel": "S2"}),
        (b"staff_id,login\nS1,jsmith\n", {"jsmith": "S1"}),  # columns found by name
        (b"login,staff_id\n", {}),
    ],
)
def test_read_logins(write, content, expected):
    assert read_logins(write("logins.csv", content)) == (expected, [])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"login,staff_id\njsmith,S1\nJSmith,S2\n",
         "logins.csv:3: login: 'JSmith' already listed on line 2"),
        (b"login,staff_id\njsmith,\n", "logins.csv:2: login and staff_id are both needed"),
        (b"login,staff_id\n,S1\n", "logins.csv:2: login and staff_id are both needed"),
        (b"login,staff\n", "logins.csv:1: login map header lacks column(s) staff_id"),
    ],
)
def test_read_logins_errors_name_file_and_line(write, content, expected):
    assert read_logins(write("logins.csv", content))[1] == [expected]
