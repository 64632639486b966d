"""The studio's HTTP API as docs/studio.md documents it: every curl example of the page, sent
to a studio serving a folder of tiny runs, answers as the page says."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .studio_support import events, make_runs, studio

DOC = Path(__file__).resolve().parent.parent / "docs" / "studio.md"


def documented_requests() -> list[dict]:
    """Each curl line of the page's HTTP API section: method, path, headers and body."""
    section = DOC.read_text(encoding="utf-8").split("## HTTP API", 1)[1]
    found = []
    for line in re.findall(r"^curl .*$", section, flags=re.M):
        words = shlex.split(line)
        request = {"method": "GET", "headers": {}, "body": None}
        i = 1
        while i < len(words):
            word = words[i]
            if word == "-H":
                name, _, value = words[i + 1].partition(":")
                request["headers"][name.strip()] = value.strip()
                i += 1
            elif word == "-d":
                request["method"], request["body"] = "POST", words[i + 1]
                i += 1
            elif word.startswith("http"):
                url = urlsplit(word)
                request["path"] = url.path + (f"?{url.query}" if url.query else "")
            i += 1
        found.append(request)
    return found


def test_the_page_documents_each_route_with_a_curl_example():
    paths = [r["path"].split("?")[0] for r in documented_requests()]
    assert paths == ["/api/models", "/api/runs", "/api/metrics", "/api/write", "/api/write"]


def test_every_documented_example_answers_as_documented(tmp_path):
    import http.client

    root = make_runs(tmp_path / "runs")
    answers, traced = {}, None
    with studio(root) as server:
        host, port = server.server_address[:2]
        for request in documented_requests():
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request(request["method"], request["path"], body=request["body"],
                         headers=request["headers"])
            res = conn.getresponse()
            assert res.status == 200, (request, res.read())
            if res.getheader("Content-Type").startswith("text/event-stream"):
                if '"trace": true' in request["body"]:
                    traced = list(events(res))
                else:
                    answers[request["path"]] = list(events(res))
            else:
                answers[request["path"]] = json.loads(res.read())
            conn.close()
    models = answers["/api/models"]
    assert {"models", "default", "limits"} <= set(models)
    assert "runA/best.pt" in [m["name"] for m in models["models"]]
    assert {r["name"] for r in answers["/api/runs"]["runs"]} >= {"runA"}
    records = answers["/api/metrics?run=runA"]["records"]
    assert records and {"step", "val_loss", "lr", "elapsed"} <= set(records[0])
    kinds = [kind for kind, _ in answers["/api/write"]]
    assert kinds[0] == "start" and kinds[-1] == "done" and "chars" in kinds
    assert [data["number"] for kind, data in answers["/api/write"] if kind == "song"] == [1, 2]
    assert answers["/api/write"][0][1]["seed"] == 7
    # With the trace: a trace event after each chars event, one object per new character.
    kinds = [kind for kind, _ in traced]
    assert kinds.count("trace") == kinds.count("chars") > 0
    for (kind, data), (after, found) in zip(traced, traced[1:]):
        if kind == "chars" and data[0] is not None:
            assert after == "trace" and "".join(t["char"] for t in found[0]) == data[0]
    first = next(data[0][0] for kind, data in traced if kind == "trace" and data[0])
    assert set(first) >= {"char", "p", "p_final", "choices", "steps"}
    assert all(set(step) == {"step", "words", "removed", "forced"} for step in first["steps"])


def test_each_song_card_names_every_stop_reason():
    """A song the shape guide ended ("stop": "shape", most songs) showed "undefined" on its
    card: the page's names of the stop reasons must cover the four the sampler gives
    (docs/sampling.md)."""
    script = (Path(__file__).resolve().parent.parent / "songgen" / "studio" / "static" /
              "studio.js").read_text(encoding="utf-8")
    names = re.search(r"const why = \{(.*?)\}\[song\.stop\]", script).group(1)
    keys = set(re.findall(r'"?([\w-]+)"?:\s*"', names))
    assert keys == {"end", "shape", "max-lines", "length"}
