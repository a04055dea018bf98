"""`lab app`: the page's endpoints driven with gradio_client, hostile input, concurrency, and a real browser,
over runs trained tiny on synthetic posters."""

import concurrent.futures
import http.client
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lab
import lab.training
from conftest import SHARED, chromium, lab_ok, run_cli
from lab.data.synthetic import make_synthetic_posters

gradio_client = pytest.importorskip("gradio_client", reason="lab app needs gradio: pip install -e '.[app]'")
from gradio_client import Client, handle_file  # noqa: E402

from lab.app import MOST_PROBABLE, PosterApp, launch  # noqa: E402

TORCH_HOME = SHARED / "torch-home"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory):
    """A tiny classifier, GAN and diffusion model on the same synthetic posters, in one runs folder."""
    root = tmp_path_factory.mktemp("app")
    data = make_synthetic_posters(root / "posters", 240, seed=7, size=(32, 48))
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(TORCH_HOME))
    runs = root / "runs"
    lab_ok("train-classifier", "--data", data, "--out", runs / "classifier", "--size", "32x48", "--schedule", "2:0",
           "--no-baselines")
    lab_ok("train-gan", "--data", data, "--out", runs / "gan", "--size", "32x48", "--channels", "8", "--steps", "10",
           "--batch-size", "16")
    lab.train_diffusion(data, out=runs / "diffusion", size="32x48", channels=8, multipliers=[1, 2],
                        layers_per_block=1, batch_size=8, steps=6, progress=False)
    mp.undo()
    return root, data, runs


@pytest.fixture(scope="module")
def served(app_runs):
    """The app over the runs folder, served on a free local port; yields (app, its URL)."""
    root, data, runs = app_runs
    web = PosterApp(runs=runs)
    page = launch(web, port=_free_port())
    yield web, page.local_url
    page.close()
    web.close()


def _client(url: str, tmp_path: Path) -> Client:
    return Client(url, verbose=False, download_files=str(tmp_path))


def _poster(data: Path) -> str:
    return str(sorted((data / "images").iterdir())[0])


def test_classify_gives_lab_predicts_genres_and_a_heatmap_of_the_asked_genre(app_runs, served, tmp_path):
    root, data, runs = app_runs
    web, url = served
    client = _client(url, tmp_path)
    poster = _poster(data)
    label, words, heat = client.predict(handle_file(poster), MOST_PROBABLE, [], "", api_name="/classify")
    expected = lab.predict(runs / "classifier", [poster])[0]
    got = [(c["label"], c["confidence"]) for c in label["confidences"]]
    assert got == expected.genres[:5]
    assert f"{expected.decade}s" in words and "rating" in words.lower()
    classifier = lab.open_classifier(runs / "classifier")
    pixels = classifier.decode(poster)
    top_heat, top = lab.grad_cam(classifier, pixels)
    assert top == expected.genres[0][0] and np.array_equal(np.asarray(Image.open(heat)), top_heat)
    last = expected.genres[-1][0]
    _, words_last, heat_last = client.predict(handle_file(poster), last, [], "", api_name="/classify")
    assert f"saw {last}" in words_last
    assert np.array_equal(np.asarray(Image.open(heat_last)), lab.grad_cam(classifier, pixels, last)[0])
    # Told the film's genres and year, the rating is the one `lab predict --genre --year` gives.
    _, told, _ = client.predict(handle_file(poster), MOST_PROBABLE, ["Horror"], "1994", api_name="/classify")
    rating = lab.predict(runs / "classifier", [poster], genres=["Horror"], year=1994)[0].rating
    assert f"{rating:.1f} (told the film's genres and year)" in told


@pytest.mark.parametrize("kind", ["gan", "diffusion"])
def test_generate_gives_lab_samples_posters_each_beside_a_training_poster(app_runs, served, tmp_path, kind):
    root, data, runs = app_runs
    web, url = served
    client = _client(url, tmp_path)
    label = next(name for name, g in web.generators.items() if g.kind == kind)
    args = (label, ["Horror", "Comedy"], "1990", 5, 3, "ddim", 4, 2.0, "none")
    posters, nearest, summary = client.predict(*args, api_name="/generate")
    settings = {"sampler": "ddim", "steps": 4, "guidance": 2.0} if kind == "diffusion" else {}
    expected = lab.sample(runs / kind, ["Horror+Comedy"], ["1990"], n=5, seed=3, **settings).images
    made = np.stack([np.asarray(Image.open(p["image"]).convert("RGB")) for p in posters])
    assert np.array_equal(made, expected)
    assert all("%" in p["caption"] for p in posters) and "5 posters of Horror + Comedy, 1990s" in summary
    train_ids = set(lab.nearest_training_posters(runs / kind).ids)
    assert len(nearest) == 5 and all(n["caption"].split()[0] in train_ids for n in nearest)
    again, _, _ = client.predict(*args, api_name="/generate")
    assert [np.asarray(Image.open(p["image"])).tolist() for p in again] == \
           [np.asarray(Image.open(p["image"])).tolist() for p in posters]


def test_hostile_uploads_are_one_line_messages_and_the_server_keeps_serving(app_runs, served, tmp_path):
    root, data, runs = app_runs
    web, url = served
    client = _client(url, tmp_path)
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "random.png").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "text.jpg").write_text("this is not a poster\n")
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 megapixels in a few kB
    expected = {"empty.png": "empty file", "random.png": "not an image", "text.jpg": "not an image",
                "bomb.png": "decompression bomb"}
    for name, reason in expected.items():
        with pytest.raises(gradio_client.exceptions.AppError) as caught:
            client.predict(handle_file(str(tmp_path / name)), MOST_PROBABLE, [], "", api_name="/classify")
        message = str(caught.value)
        assert reason in message and "\n" not in message and "Traceback" not in message, message
    for year, reason in [("nineteen", "a number like 1994"), ("1700", "this run knows the decades")]:
        with pytest.raises(gradio_client.exceptions.AppError, match=reason):
            client.predict(handle_file(_poster(data)), MOST_PROBABLE, [], year, api_name="/classify")
    with pytest.raises(gradio_client.exceptions.AppError, match="pick at least one genre"):
        client.predict(next(iter(web.generators)), [], "1990", 4, 0, "ddim", 4, 2.0, "none", api_name="/generate")
    # An upload over the size cap is refused before it is stored.
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (21 * 2**20))
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(big)), MOST_PROBABLE, [], "", api_name="/classify")
    assert not any(p.stat().st_size > 20 * 2**20 for p in web.temp.rglob("*") if p.is_file())
    # Still serving, and nothing was written into the runs.
    label, _, _ = client.predict(handle_file(_poster(data)), MOST_PROBABLE, [], "", api_name="/classify")
    assert label["confidences"]
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before


def _get(url: str, path: str) -> tuple[int, bytes]:
    """A GET of `path` sent as written (no client tidies its dots away)."""
    host, port = url.split("//")[1].strip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_the_file_route_serves_nothing_outside_the_apps_folder(app_runs, served):
    root, data, runs = app_runs
    web, url = served
    weights = next((runs / "classifier" / "checkpoints").glob("*.safetensors"))
    # A refusal may echo the path it refused, so look for the files' contents, not their names.
    contents = [b"root:x:", weights.read_bytes()[:64], (data / "metadata.csv").read_bytes()[:64]]
    for path in ["/gradio_api/file=/etc/passwd", "/gradio_api/file=../../../../../../etc/passwd",
                 "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 f"/gradio_api/file={web.temp}/../../../../etc/passwd", f"/gradio_api/file={weights}",
                 f"/gradio_api/file={data}/metadata.csv", "/gradio_api/file=http://127.0.0.1:1/x.png",
                 "/gradio_api/file=https://example.com/poster.jpg", "/file=/etc/passwd"]:
        status, body = _get(url, path)
        assert status in (403, 404) and not any(c in body for c in contents), (path, status)


def test_twenty_requests_at_once_are_all_answered_as_one_at_a_time(app_runs, served, tmp_path):
    root, data, runs = app_runs
    web, url = served
    files = [str(p) for p in sorted((data / "images").iterdir())[:20]]

    def classify(path):
        return _client(url, tmp_path).predict(handle_file(path), MOST_PROBABLE, [], "", api_name="/classify")[0]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        together = list(pool.map(classify, files))
    alone = [classify(f) for f in files]
    assert together == alone and len({str(t) for t in together}) > 1


def test_runs_tab_lists_the_runs_and_opens_a_report(app_runs, served, tmp_path):
    root, data, runs = app_runs
    web, url = served
    client = _client(url, tmp_path)
    table, choices = client.predict(api_name="/runs")
    rows = table["data"] if isinstance(table, dict) else table
    assert sorted(r[0] for r in rows) == ["classifier", "diffusion", "gan"]
    assert {r[1] for r in rows} == {"classifier", "gan", "diffusion"} and all(r[3] == "finished" for r in rows)
    assert {r[2] for r in rows} == {lab.training.auto_precision()}  # what each trained in, "auto" resolved
    frame, page = client.predict("gan", api_name="/report")
    assert "<iframe" in frame and "srcdoc=" in frame and Path(page).read_text().startswith("<!")
    assert not (runs / "gan" / "report.html").exists()  # written in the app's own folder
    with pytest.raises(gradio_client.exceptions.AppError):
        client.predict("../../etc", api_name="/report")


def test_the_command_refuses_bad_runs_in_one_line_and_warns_of_an_open_host(app_runs, capsys, tmp_path,
                                                                              monkeypatch):
    root, data, runs = app_runs
    code, out, err = run_cli(capsys, "app", "--classifier", tmp_path / "nothing-here")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "app", "--classifier", runs / "gan", "--host", "0.0.0.0")
    assert code == 2 and "not a classifier run" in err and "anyone" in err
    code, out, err = run_cli(capsys, "app", "--generator", runs / "classifier")
    assert code == 2 and "not a generator run" in err.splitlines()[-1]
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    code, out, err = run_cli(capsys, "app", "--runs", runs)
    assert code == 2 and 'pip install -e ".[app]"' in err


def test_the_apps_folder_is_gone_when_it_closes(app_runs):
    root, data, runs = app_runs
    web = PosterApp(runs=runs)
    temp = web.temp
    (temp / "upload.png").write_bytes(b"x")
    web.close()
    assert not temp.exists()


# ---- the page in a real browser ----

def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
    binary = chromium()
    driver = shutil.which("chromedriver") or pytest.skip("chromedriver is missing (Debian: apt-get install "
                                                          "chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # selenium must not try to download a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)


def _wait(condition, seconds: float = 60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError("the page did not show it in time")


def test_a_browser_reads_a_poster_and_makes_posters(app_runs, served):
    root, data, runs = app_runs
    web, url = served
    from selenium.webdriver.common.by import By
    browser = _browser()
    try:
        browser.get(url)
        poster = _poster(data)
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(poster)
        top = lab.predict(runs / "classifier", [poster])[0].genres[0][0]
        shown = _wait(lambda: (t := browser.find_element(By.ID, "genres").text) and top in t and t)
        assert shown.splitlines()[:2] == ["Genres", top]  # the label, then the top genre in large type
        next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if "Make posters" in b.text).click()
        _wait(lambda: browser.find_element(By.ID, "make").is_displayed())
        browser.find_element(By.ID, "make").click()
        images = _wait(lambda: len(found := browser.find_elements(By.CSS_SELECTOR, "#posters img")) >= 8 and found)
        assert len(images) == 8
        assert len(browser.find_elements(By.CSS_SELECTOR, "#nearest img")) == 8
    finally:
        browser.quit()
