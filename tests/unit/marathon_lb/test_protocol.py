"""Server-sent events, leader choice and `show proc` (`marathon_lb.protocol`)."""

from __future__ import annotations

from pathlib import Path

from marathon_lb.haproxy import MAX_SOCKET_PATH, HAProxy
from marathon_lb.protocol import Processes, SseParser, leader_url, parse_show_proc


def feed(parser: SseParser, text: str) -> list[tuple[str, dict[str, object]]]:
    return [item for line in text.split("\n") for item in parser.feed(line)]


def test_events_are_framed_by_blank_lines_and_named_by_their_event_field() -> None:
    parser = SseParser()
    stream = ('event: status_update_event\ndata: {"eventType":"status_update_event",'
              '"taskId":"t1"}\n\n: a comment\n\ndata: {"eventType":"api_post_event"}\n\n')
    assert feed(parser, stream) == [
        ("status_update_event", {"eventType": "status_update_event", "taskId": "t1"}),
        ("api_post_event", {"eventType": "api_post_event"}),
    ]


def test_an_event_split_across_data_lines_and_feeds_is_joined() -> None:
    parser = SseParser()
    assert feed(parser, 'event: x\ndata: {"a":') == []
    assert feed(parser, 'data: 1}\n\n') == [("x", {"a": 1})]


def test_several_json_documents_in_one_event_and_garbage_are_handled() -> None:
    parser = SseParser()
    assert feed(parser, 'data: {"eventType":"a"}\r\ndata: not json\n\n') == [
        ("a", {"eventType": "a"})]
    assert feed(parser, "data:\n\n") == []


def test_the_leader_is_followed_when_it_is_one_of_the_urls() -> None:
    urls = ["http://m1:8080", "http://m2:8080"]
    assert leader_url(urls, "http://m1:8080", "m2:8080") == "http://m2:8080"
    assert leader_url(urls, "http://m1:8080", "elsewhere:8080") == "http://m1:8080"
    assert leader_url(urls, "http://m2:8080", None) == "http://m2:8080"


SHOW_PROC = """\
#<PID>          <type>          <reloads>       <uptime>        <version>
14950           master          2 [failed: 0]   0d00h00m12s     2.6.12-1+deb12u4
# workers
20492           worker          0               0d00h00m03s     2.6.12-1+deb12u4
# old workers
20400           worker          1               0d00h00m08s     2.6.12-1+deb12u4
# programs
"""


def test_show_proc_gives_the_reload_count_and_current_and_old_workers() -> None:
    assert parse_show_proc(SHOW_PROC) == Processes(14950, 2, 0, (20492,), (20400,))
    assert parse_show_proc("Unknown command\n") is None


def test_after_a_failed_reload_the_previous_worker_stays_current() -> None:
    failed = """\
#<PID>          <type>          <reloads>       <uptime>        <version>
12901           master          1 [failed: 1]   0d00h03m37s     2.6.12-1+deb12u4
# workers
12942           worker          1               0d00h03m37s     2.6.12-1+deb12u4
# programs
"""
    assert parse_show_proc(failed) == Processes(12901, 1, 1, (12942,), ())


def test_the_master_socket_path_stays_short_enough_for_haproxy(tmp_path: Path) -> None:
    short = HAProxy("haproxy", Path("/etc/haproxy/haproxy.cfg"))
    assert short.master_socket == Path("/etc/haproxy/haproxy.sock")
    deep = tmp_path / ("d" * 80) / "haproxy.cfg"
    long = HAProxy("haproxy", deep)
    assert len(str(long.master_socket)) <= MAX_SOCKET_PATH
    assert long.master_socket.parent.is_dir() and long.master_socket.name == "master.sock"
    long.master_socket.parent.rmdir()
