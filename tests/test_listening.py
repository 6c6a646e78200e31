import csv
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from saraikit.core.errors import ConfigError, DataError
from saraikit.quality.listening import LABEL, build_kit, mos_table, read_ratings, serve_kit

SYSTEMS = ("piper-fp32", "piper-int8")
TEXTS = ("t1", "t2", "t3")


@pytest.fixture()
def wavs(tmp_path):
    """One distinct short WAV per (system, text), so copied files can be traced by content."""
    folder = tmp_path / "sources"
    folder.mkdir()
    samples = []
    for s, system in enumerate(SYSTEMS):
        for t, text_id in enumerate(TEXTS):
            path = folder / f"{system}_{text_id}.wav"
            tone = 0.1 * np.sin(2 * np.pi * (300 + 100 * s + 10 * t) * np.arange(1600) / 16000)
            sf.write(path, tone.astype(np.float32), 16000, subtype="PCM_16")
            samples.append((system, text_id, path))
    return samples


def read_key(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_kit_is_blinded_and_the_key_maps_each_clip_back(wavs, tmp_path):
    kit = build_kit(wavs, tmp_path / "kit", seed=3)
    assert kit.key_csv == tmp_path / "kit-key.csv"  # beside the kit, not in it
    assert sorted(p.name for p in kit.kit_dir.iterdir()) == ["audio", "index.html"]
    key = read_key(kit.key_csv)
    assert [row["sample_id"] for row in key] == kit.sample_ids == [f"s{i:03d}" for i in range(1, 7)]
    sources = {(system, text_id): path for system, text_id, path in wavs}
    for row in key:
        copied = kit.kit_dir / row["audio"]
        assert copied.read_bytes() == sources[(row["system"], row["text_id"])].read_bytes()
    page = kit.index_html.read_text(encoding="utf-8")
    for hidden in (*SYSTEMS, "sources", "fp32", "int8"):
        assert hidden not in page
    assert page.count('type="radio"') == 6 * 5
    assert "http://" not in page and "https://" not in page  # self-contained
    # Systems are shuffled together: not all of one system first.
    order = [row["system"] for row in key]
    assert order != sorted(order)


def test_same_seed_same_blinding_other_seed_other(wavs, tmp_path):
    def key_for(name, seed):
        return [(r["system"], r["text_id"]) for r in read_key(build_kit(wavs, tmp_path / name, seed=seed).key_csv)]

    assert key_for("a", 1) == key_for("b", 1)
    assert key_for("c", 1) != key_for("d", 2)


def test_kit_refuses_to_overwrite_and_checks_samples(wavs, tmp_path):
    build_kit(wavs, tmp_path / "kit", seed=0)
    with pytest.raises(ConfigError, match="not empty"):
        build_kit(wavs, tmp_path / "kit", seed=0)
    with pytest.raises(ConfigError, match="already exists"):
        build_kit(wavs, tmp_path / "other", key_path=tmp_path / "kit-key.csv")
    with pytest.raises(ConfigError, match="must not be inside"):
        build_kit(wavs, tmp_path / "third", key_path=tmp_path / "third" / "key.csv")
    with pytest.raises(DataError, match="no such audio file"):
        build_kit([("a", "t", tmp_path / "missing.wav")], tmp_path / "k2")
    with pytest.raises(DataError, match="listed twice"):
        build_kit([wavs[0], wavs[0]], tmp_path / "k3")
    assert not (tmp_path / "k2").exists() and not (tmp_path / "k3").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left


def write_ratings(path, rows):
    path.write_text("rater,sample_id,rating\n" + "".join(f"{r},{s},{v}\n" for r, s, v in rows), encoding="utf-8")
    return path


def test_read_ratings_and_mos_table_with_known_values(wavs, tmp_path):
    kit = build_kit(wavs, tmp_path / "kit", seed=0)
    key = {(row["system"], row["text_id"]): row["sample_id"] for row in read_key(kit.key_csv)}
    ratings_dir = tmp_path / "ratings"
    ratings_dir.mkdir()
    # ann: fp32 all 5, int8 all 3; bob: fp32 all 4, int8 all 2.
    for rater, (good, bad) in {"ann": (5, 3), "bob": (4, 2)}.items():
        rows = [(rater, key[(SYSTEMS[0], t)], good) for t in TEXTS] + [(rater, key[(SYSTEMS[1], t)], bad) for t in TEXTS]
        write_ratings(ratings_dir / f"ratings-{rater}.csv", rows)
    ratings = read_ratings(ratings_dir, kit.key_csv)
    assert len(ratings) == 12 and set(ratings["rater"]) == {"ann", "bob"}
    table = mos_table(ratings).set_index("system")
    assert list(table.index) == list(SYSTEMS)  # best first
    assert table.loc[SYSTEMS[0], "mos"] == 4.5 and table.loc[SYSTEMS[1], "mos"] == 2.5
    assert (table["n_ratings"] == 6).all() and (table["n_raters"] == 2).all() and (table["n_texts"] == 3).all()
    assert table.loc[SYSTEMS[0], "ci_low"] < 4.5 < table.loc[SYSTEMS[0], "ci_high"]
    assert 4.0 <= table.loc[SYSTEMS[0], "ci_low"] and table.loc[SYSTEMS[0], "ci_high"] <= 5.0
    assert (table["label"] == LABEL).all()


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("ann", "s001", 6)], "line 2: rating must be an integer from 1 to 5, got '6'"),
        ([("ann", "s001", "")], "rating must be an integer"),
        ([("ann", "s999", 3)], "not in the key.*s999"),
        ([("ann", "s001", 3), ("ann", "s001", 4)], "rated s001 more than once"),
    ],
)
def test_bad_ratings_are_refused_with_file_and_line(wavs, tmp_path, rows, message):
    kit = build_kit(wavs, tmp_path / "kit", seed=0)
    path = write_ratings(tmp_path / "ratings-ann.csv", rows)
    with pytest.raises(DataError, match=message):
        read_ratings([path], kit.key_csv)


def test_missing_columns_are_named(wavs, tmp_path):
    kit = build_kit(wavs, tmp_path / "kit", seed=0)
    path = tmp_path / "ratings-x.csv"
    path.write_text("name,sample,score\nann,s001,3\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column\\(s\\) rater, sample_id, rating"):
        read_ratings(path, kit.key_csv)


def test_server_stores_valid_posts_and_rejects_bad_ones(wavs, tmp_path):
    kit = build_kit(wavs, tmp_path / "kit", seed=0)
    with serve_kit(kit.kit_dir, tmp_path / "ratings") as server:
        page = urllib.request.urlopen(server.url).read().decode("utf-8")
        assert "Listening test" in page
        base = server.url.replace("index.html", "save")

        def post(query, body):
            request = urllib.request.Request(f"{base}?{query}", data=body.encode("utf-8"), method="POST")
            return urllib.request.urlopen(request).read().decode("utf-8")

        assert post("file=ratings-ann.csv", "rater,sample_id,rating\nann,s001,4\n") == "saved ratings-ann.csv"
        for query, body in [("file=../evil.csv", "rater,sample_id,rating\nann,s001,4\n"),
                            ("file=ratings-ann.csv", "rater,sample_id,rating\nann,s001,9\n")]:
            with pytest.raises(urllib.error.HTTPError) as error:
                post(query, body)
            assert error.value.code == 400
    assert server.received == [tmp_path / "ratings" / "ratings-ann.csv"]
    assert not (tmp_path / "evil.csv").exists()
    assert read_ratings(tmp_path / "ratings", kit.key_csv)["rating"].tolist() == [4]


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000", "--dump-dom",
]


def run_chromium(url, tmp_path, name):
    """Load ``url`` headless; return the page's save status and the CSVs it downloaded.

    Two quirks of headless Chromium under load are handled here: it sometimes
    stays alive after printing the DOM (so we wait for the dump and the
    download, then stop the process group we started), and it may quit
    right after the dump, cancelling a download still being written (so the
    caller retries when it needs the download).
    """
    home = tmp_path / f"home-{name}"  # the Blob download lands in $HOME/Downloads
    downloads = home / "Downloads"
    home.mkdir()
    dom_file, err_file = tmp_path / f"dom-{name}.html", tmp_path / f"stderr-{name}.txt"
    with open(dom_file, "w") as dom, open(err_file, "w") as stderr:
        process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}", url],
            stdout=dom, stderr=stderr, stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(home)}, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < deadline:
                if "</html>" in dom_file.read_text() and list(downloads.glob("*.csv")):
                    break
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    status = re.search(r'<span id="status" data-state="(\w+)">([^<]*)</span>', dom_file.read_text())
    assert status, f"no status in the page; chromium stderr: {err_file.read_text()[-2000:]}"
    return status.groups(), sorted(downloads.glob("*.csv"))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package 'chromium'); the browser round trip needs it")
def test_kit_round_trip_in_a_real_browser(wavs, tmp_path):
    kit = build_kit(wavs, tmp_path / "kit", seed=0)

    # Served over http: the page posts the CSV to the server.
    with serve_kit(kit.kit_dir, tmp_path / "ratings") as server:
        (state, text), _ = run_chromium(server.url + "?autofill=3&rater=Ann%20Lee", tmp_path, "http")
    assert (state, text) == ("saved", "Saved 6 ratings on the server")
    assert server.received == [tmp_path / "ratings" / "ratings-Ann_Lee.csv"]

    # Opened from disk: no server, the Blob download alone carries the ratings.
    for attempt in range(3):
        (state, text), downloaded = run_chromium(kit.index_html.as_uri() + "?autofill=4&rater=bob", tmp_path, f"file{attempt}")
        if downloaded:
            break
    assert (state, text) == ("downloaded", "Saved 6 ratings to ratings-bob.csv")
    assert [path.name for path in downloaded] == ["ratings-bob.csv"], "Chromium quit before writing the download, 3 times"

    ratings = read_ratings([server.received[0], downloaded[0]], kit.key_csv)
    assert set(ratings["rater"]) == {"Ann Lee", "bob"}
    by_rater = mos_table(ratings[ratings["rater"] == "Ann Lee"])
    assert list(by_rater["mos"]) == [3.0, 3.0] and sorted(by_rater["system"]) == list(SYSTEMS)
    assert (by_rater["ci_low"] == 3.0).all() and (by_rater["ci_high"] == 3.0).all()
    assert (by_rater["n_ratings"] == 3).all()
    both = mos_table(ratings).set_index("system")
    assert (both["mos"] == 3.5).all() and (both["n_raters"] == 2).all()
    pd.testing.assert_series_equal(both["n_ratings"], pd.Series([6, 6], index=both.index, name="n_ratings"))
