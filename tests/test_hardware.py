import psutil

from saraikit.core import hardware


def test_fingerprint_has_the_facts_that_matter():
    fp = hardware.fingerprint()
    assert fp.logical_cores >= fp.physical_cores >= 1
    assert fp.ram_bytes > 2**30
    assert fp.cpu_model and fp.arch
    assert set(fp.packages) >= {"onnxruntime", "llama-cpp-python", "ctranslate2"}
    assert fp.packages["onnxruntime"] != "not installed"
    assert len(fp.digest()) == 12 and fp.digest() == hardware.fingerprint().digest()


def test_flags_are_normalised_and_filtered():
    raw = ["fpu", "avx2", "avx512vnni", "avx512_vnni", "avx_vnni", "asimd", "asimddp", "sse4_2", "amx_tile"]
    assert hardware.normalise_flags(raw) == ["amx_tile", "avx2", "avx512_vnni", "avx_vnni", "dotprod", "neon"]


def test_fingerprint_flags_match_proc_cpuinfo():
    text = open("/proc/cpuinfo").read()
    flags_line = next(line for line in text.splitlines() if line.startswith(("flags", "Features")))
    expected = hardware.normalise_flags(flags_line.split(":", 1)[1].split())
    assert hardware.fingerprint().isa_flags == expected


def test_slug_is_stable_and_overridable(monkeypatch):
    monkeypatch.delenv("SARAIKIT_TARGET", raising=False)
    fp = hardware.fingerprint()
    slug = hardware.target_slug(fp=fp)
    assert slug == hardware.target_slug(fp=fp)
    assert slug.endswith(f"-{fp.logical_cores}t") and slug == slug.lower()
    assert hardware.target_slug("Raspberry Pi 5") == "raspberry-pi-5"
    monkeypatch.setenv("SARAIKIT_TARGET", "i5 dual-core")
    assert hardware.target_slug() == "i5-dual-core"


def test_slugify_drops_marketing_noise():
    assert hardware.slugify("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz") == "intel-core-i7-8550u"


def test_physical_cores_asks_psutil_for_physical_cores(monkeypatch):
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 4 if logical else 2)
    assert hardware.physical_cores() == 2
