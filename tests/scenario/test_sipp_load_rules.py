"""SIPp's own load-time rules (scenario.cpp, message.cpp, xp_parser.cpp), kept by the loader.

Each test states what SIPp does with the same XML: a scenario SIPp refuses is refused
here, with the file and line; one SIPp reads is read to the same steps and bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipper.errors import FileProblem
from gossipper.scenario import model
from gossipper.scenario.loader import load_scenario_file, parse_scenario

OPTIONS = "<send><![CDATA[\nOPTIONS sip:{user}@h SIP/2.0\nCall-ID: [call_id]\n\n]]></send>\n"


def load(body: str) -> model.Scenario:
    return parse_scenario(f"<scenario>\n{body}</scenario>".encode(), "s.xml")


def refused(body: str) -> str:
    with pytest.raises(FileProblem) as caught:
        load(body)
    message = str(caught.value)
    assert message.startswith("s.xml:") and "\n" not in message
    return message


def sent(step: model.Step) -> bytes:
    assert isinstance(step, model.Send)
    return step.message.render(lambda token: f"<{token}>")


# ------------------------------------------------------------------ 6. variables
def test_a_variable_used_once_is_refused_with_its_line() -> None:
    """SIPp: 'Variable $who is referenced 1 times!' (AllocVariableTable::validate)."""
    message = refused('<nop/>\n<nop/>\n<recv request="INVITE"/>\n' + OPTIONS.format(user="[$who]"))
    assert message.startswith("s.xml:5: <send> [$who]: variable $who is used only once")


@pytest.mark.parametrize(
    "uses",
    [
        # set, then read: in a message, by test=, by condexec=, by a pause
        '<nop><action><assignstr assign_to="v" value="x"/></action></nop>\n' + OPTIONS.format(user="[$v]"),
        '<nop next="l" test="v"><action><assign assign_to="v" value="1"/></action></nop>\n<label id="l"/>\n',
        '<nop><action><assign assign_to="v" value="1"/></action></nop>\n<nop condexec="v"/>\n',
        '<nop><action><assign assign_to="v" value="1"/></action></nop>\n<pause variable="v"/>\n',
        # read twice and never set: SIPp counts uses, not assignments
        OPTIONS.format(user="[$v]") + '<nop condexec="v"/>\n',
        # the whole match of an ereg, kept by <Reference>, and "_", which SIPp never checks
        '<recv request="INVITE"><action><ereg regexp="(a)" assign_to="all,sub"/></action></recv>\n'
        + OPTIONS.format(user="[$sub]")
        + '<Reference variables="all"/>\n',
        '<recv request="INVITE"><action><ereg regexp="a" assign_to="_"/></action></recv>\n',
        # a <Global> declaration is one use
        '<Global variables="g"/>\n' + OPTIONS.format(user="[$g]"),
        # [fill variable=] reads the variable
        '<nop><action><assign assign_to="n" value="3"/></action></nop>\n'
        + '<nop><action><log message="[fill variable=n]"/></action></nop>\n',
    ],
)
def test_two_uses_of_any_kind_load(uses: str) -> None:
    load('<recv request="INVITE"/>\n' + uses if not uses.startswith("<recv") else uses)


def test_fill_needs_its_variable() -> None:
    assert "[fill] needs variable=" in refused(
        '<nop><action><log message="[fill text=ab]"/></action></nop>\n'
    )


def test_test_without_next_is_no_use_as_sipp_reads_it_only_with_next() -> None:
    message = refused(
        '<recv request="INVITE"/>\n<nop test="v"><action><assign assign_to="v" value="1"/></action></nop>\n'
    )
    assert "variable $v is used only once" in message


def test_reference_names_only_a_variable_used_before_it() -> None:
    message = refused('<Reference variables="later"/>\n<recv request="INVITE"/>\n')
    assert message.startswith("s.xml:2: <Reference> names variable 'later'")


def test_test_variable_always_names_a_variable() -> None:
    """SIPp: variable="1" is the variable named 1 (xp_get_var), never the number one."""
    message = refused(
        '<recv request="INVITE"><action><test assign_to="r" variable="1" compare="equal" value="1"/>'
        '</action></recv>\n<nop condexec="r"/>\n'
    )
    assert "s.xml:2: <test> variable=: variable $1 is used only once" in message
    scenario = load(
        '<recv request="INVITE"><action><assign assign_to="1" value="3"/>'
        '<test assign_to="r" variable="1" compare="equal" value="1"/></action></recv>\n<nop condexec="r"/>\n'
    )
    test = scenario.steps[0].actions[1]
    assert isinstance(test, model.Test)
    assert (test.variable, test.operand) == ("1", model.Operand(value=1.0))


@pytest.mark.parametrize(
    ("action", "text"),
    [
        ('<assign assign_to="x" value="one"/>', "value='one': expected a number"),
        ('<add assign_to="x" value="1" variable="y"/>', "takes value= or variable=, not both"),
        (
            '<test assign_to="x" variable="y" value="1" variable2="z" compare="equal"/>',
            "value= or variable2=",
        ),
        (
            '<ereg regexp="a" assign_to="x" check_it="true" check_it_inverse="true"/>',
            "check_it= or check_it_inverse=",
        ),
        ('<divide assign_to="x" value="0"/>', "cannot divide by zero"),
        ('<assign assign_to="a,b" value="1"/>', "may not contain $ or ,"),
    ],
)
def test_action_arguments_sipp_refuses(action: str, text: str) -> None:
    assert text in refused(f'<recv request="INVITE"><action>{action}</action></recv>\n')


# ------------------------------------------------------------------ 7. ereg placement
@pytest.mark.parametrize(
    "attribute", ['header="From"', 'start_line="true"', 'occurrence="2"', 'case_indep="true"']
)
def test_ereg_header_options_need_search_in_hdr(attribute: str) -> None:
    """SIPp reads these only for search_in="hdr" (case_indep never reaches the regexp)."""
    message = refused(
        f'<recv request="INVITE"><action><ereg regexp="a" assign_to="_" {attribute}/></action></recv>\n'
    )
    assert 'applies only to search_in="hdr"' in message


def test_ereg_takes_posix_classes_and_refuses_more_groups_than_the_regexp_has() -> None:
    scenario = load(
        '<recv request="INVITE"><action><ereg regexp="o=([[:alnum:]]*)" assign_to="_,user"/></action>'
        + "</recv>\n"
        + OPTIONS.format(user="[$user]")
    )
    ereg = scenario.steps[0].actions[0]
    assert isinstance(ereg, model.Ereg) and ereg.pattern.search("o=alice1 x").group(1) == "alice1"
    assert "has 0 groups" in refused(
        '<recv request="INVITE"><action><ereg regexp="a" assign_to="_,b,c"/></action></recv>\n'
    )


# ------------------------------------------------------------------ 8. message text
def test_only_the_first_cdata_section_is_the_message() -> None:
    """SIPp's xp_get_cdata: text and whitespace around the section, and a second one, add nothing."""
    scenario = load(
        '<recv request="INVITE"/>\n<send>stray text <![CDATA[\nSIP/2.0 200 OK\nCall-ID: [call_id]\n\n]]>\n'
        "   more stray text\n<![CDATA[X-Second: no]]>  </send>\n"
    )
    assert sent(scenario.steps[1]) == b"SIP/2.0 200 OK\r\nCall-ID: <call_id>\r\n\r\n"


def test_text_without_cdata_is_no_message() -> None:
    assert "s.xml:3: <send> has no message (CDATA)" in refused(
        '<recv request="INVITE"/>\n<send>SIP/2.0 200 OK\n</send>\n'
    )


def test_hex_escapes_become_bytes_that_open_no_keyword() -> None:
    """message.cpp: \\xNN is the byte; \\x5B is a literal [, not a keyword's start."""
    scenario = load(
        '<recv request="INVITE"/>\n<send><![CDATA[\nSIP/2.0 200 OK\nX-Bytes: \\x41\\x5Bcall_id]\\xff\\x0a\n'
        "Content-Length: [len]\n\nab\\x00\n]]></send>\n"
    )
    data = sent(scenario.steps[1])
    head, body = data.split(b"\r\n\r\n")
    assert b"\r\nX-Bytes: A[call_id]\xff\n\r\n" in head  # \x0a is a bare byte, ending no line
    assert body == b"ab\x00\r\n"
    assert b"Content-Length:     5" in head  # [len] counts the decoded bytes, in SIPp's five columns


def test_a_hex_escape_takes_one_character_after_a_hex_digit_as_sipp_does() -> None:
    """SIPp's scan: \\x4G is the byte 0x04 and G is gone; \\xZ drops Z; \\x7 at a line end eats it."""
    scenario = load(
        '<recv request="INVITE"/>\n<send><![CDATA[\nSIP/2.0 200 OK\nX: \\x4G\\xZZ!\\x7\nY: 1\n\n]]></send>\n'
    )
    assert b"\r\nX: \x04Z!\x07Y: 1\r\n" in sent(scenario.steps[1])


def test_attribute_values_take_sipps_backslash_escapes() -> None:
    """xp_parser.cpp: \\n \\t \\r \\\\ and \\" in attributes; any other pair (\\d in a regexp) stays."""
    scenario = load(
        '<recv request="INVITE"><action><log message="a\\tb\\\\c"/>'
        '<ereg regexp="\\d+\\." assign_to="_"/></action></recv>\n'
    )
    log, ereg = scenario.steps[0].actions
    assert isinstance(log, model.Log) and log.message.render_text(str) == "a\tb\\c"
    assert isinstance(ereg, model.Ereg) and ereg.regexp == "\\d+\\."


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            '<recv request="INVITE" optional="true"/>\n' + OPTIONS.format(user="u"),
            "optional <recv> before <send>",
        ),
        (
            '<recv request="INVITE"/>\n<timewait milliseconds="1"/>\n<nop/>\n',
            "<timewait> can only be the last",
        ),
        (
            '<recv request="INVITE"/>\n<timewait next="x"/>\n<label id="x"/>\n',
            "<timewait> next= is not supported",
        ),
        (
            '<recv request="INVITE" rtd="a" repeat_rtd="true"/>\n<nop repeat_rtd="1"/>\n',
            "repeat_rtd= is not supported",
        ),
        ('<recv request="INVITE" repeat_rtd="true"/>\n', "repeat_rtd= needs rtd="),
        ('<recv request="INVITE" optional="yes"/>\n', "optional='yes': expected true, false or global"),
        ('<recv request="INVITE" rrs="maybe"/>\n', "rrs='maybe': expected true or false"),
        ('<init><nop/></init>\n<recv request="INVITE"/>\n', "<init> is not supported"),
        (
            '<send start_txn="t"><![CDATA[\nINVITE sip:x SIP/2.0\n\n]]></send>\n',
            "start_txn= is not supported",
        ),
        (
            '<recv request="INVITE"><action><verifyauth assign_to="a" username="u" password="p"/>'
            "</action></recv>\n",
            "action <verifyauth> is not supported",
        ),
        (
            '<recv request="INVITE"><action><exec play_dtmf="12"/></action></recv>\n',
            "play_dtmf= is not supported",
        ),
        (
            '<recv request="INVITE"><action><exec command="true" int_cmd="stop_call"/></action></recv>\n',
            "2 commands",
        ),
        (
            '<recv request="INVITE"><action><log message="x" level="1"/></action></recv>\n',
            "<log> has unknown attribute level=",
        ),
        ('<DefaultTransport value="udp"/>\n<recv request="INVITE"/>\n', "unknown element <DefaultTransport>"),
        (
            '<Global variables="g"/>\n<recv request="INVITE"><action><assign assign_to="g" value="1"/>'
            "</action></recv>\n",
            "writes <Global> variable $g, which is not supported",
        ),
        (
            '<recv request="INVITE"/>\n<timewait distribution="gpareto" shape="1"/>\n',
            "<timewait> shape= is not supported: the generalized Pareto",
        ),
        ("<scenario_extra/>\n", "unknown element <scenario_extra>"),
        (
            '<recv request="INVITE"/>\n<send><![CDATA[\nSIP/2.0 [$c] OK\n\n]]></send>\n',
            "needs a literal response code",
        ),
        (
            '<recv request="INVITE"/>\n<send><![CDATA[\nSIP/2.0 99 Low\n\n]]></send>\n',
            "needs a literal response code",
        ),
        (
            '<recv request="INVITE"><action><log message="a"/></action>'
            '<action><log message="b"/></action></recv>\n',
            "a second <action> in <recv>",
        ),
        (
            '<sendCmd><action><log message="x"/></action><![CDATA[\nCall-ID: [call_id]\n\n]]></sendCmd>\n',
            "<action> inside <sendCmd> is not supported",
        ),
        (
            '<recv request="INVITE" advance_state="false" optional="true"/>\n<recv request="ACK"/>\n',
            "advance_state= is not supported",
        ),
    ],
)
def test_what_sipp_refuses_or_gossipper_does_not_run_is_refused_by_name(body: str, text: str) -> None:
    assert text in refused(body)


def test_old_style_pause_distributions_and_fractional_milliseconds() -> None:
    """parse_distribution(oldstyle): min=/max= alone mean uniform; milliseconds= is a double."""
    scenario = load('<recv request="INVITE"/>\n<pause min="10" max="20"/>\n<pause milliseconds="2.5"/>\n')
    uniform, fixed = scenario.steps[1], scenario.steps[2]
    assert isinstance(uniform, model.Pause) and 10 <= (uniform.sample_ms() or 0) <= 20
    assert isinstance(fixed, model.Pause) and fixed.milliseconds == 2


def test_a_label_is_no_step_so_jumps_and_branches_count_as_sipp_does() -> None:
    scenario = load(
        '<label id="top"/>\n<recv request="INVITE"/>\n<label id="mid"/>\n<nop/>\n<label id="end"/>\n'
    )
    assert [type(step) for step in scenario.steps] == [model.Recv, model.Nop]
    assert scenario.labels == {"top": 0, "mid": 1, "end": 2}


@pytest.mark.parametrize(
    ("body", "mode"),
    [
        ('<nop/>\n<pause milliseconds="1"/>\n' + OPTIONS.format(user="u"), "client"),
        ('<pause milliseconds="1"/>\n<recv request="INVITE"/>\n', "server"),
        ('<nop/>\n<pause milliseconds="1"/>\n', None),
    ],
)
def test_creation_mode_comes_from_the_first_message_after_pauses_and_nops(
    body: str, mode: str | None
) -> None:
    assert load(body).creation_mode == mode


def test_field_keywords_need_an_injection_file_when_the_run_names_its_files() -> None:
    """SIPp: 'No injection file was specified!' and 'Invalid injection file' at load."""
    xml = (
        b"<scenario><send><![CDATA[\nOPTIONS sip:[field0]@h SIP/2.0\n"
        b'[field1 file="b.csv"]\n\n]]></send></scenario>'
    )
    with pytest.raises(FileProblem, match=r"\[field0\] needs an injection file \(-inf\)"):
        parse_scenario(xml, "f.xml", injection=frozenset())
    with pytest.raises(FileProblem, match=r"names 'b.csv', which is no -inf file"):
        parse_scenario(xml, "f.xml", injection=frozenset({"a.csv"}))
    parse_scenario(xml, "f.xml", injection=frozenset({"a.csv", "b.csv"}))


def test_media_files_are_found_beside_the_scenario_first(tmp_path: Path) -> None:
    """SIPp's find_file: a relative pcap or rtp_stream file next to the scenario, else as given."""
    (tmp_path / "here.pcap").write_bytes(b"")
    (tmp_path / "tone.wav").write_bytes(b"")
    scenario = tmp_path / "s.xml"
    scenario.write_text(
        '<scenario><recv request="INVITE"><action><exec play_pcap_audio="here.pcap"/>'
        '<exec play_pcap_video="elsewhere.pcap"/><exec rtp_stream="tone.wav,1,0"/></action></recv></scenario>'
    )
    audio, video, stream = load_scenario_file(str(scenario)).steps[0].actions
    assert isinstance(audio, model.Exec) and audio.play_pcap_audio == str(tmp_path / "here.pcap")
    assert isinstance(video, model.Exec) and video.play_pcap_video == "elsewhere.pcap"
    assert (
        isinstance(stream, model.Exec)
        and stream.rtp is not None
        and stream.rtp.file == str(tmp_path / "tone.wav")
    )
