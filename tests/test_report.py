"""`lab report` on a tiny synthetic demo (classifier, GAN, samples, scores), opened in headless Chromium,
and `lab predict --cam`."""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED, chromium
from lab.classifier.gradcam import grad_cam, overlay
from lab.classifier.inference import load_model, load_run_info
from lab.classifier.metrics import SEVEN_GENRES
from lab.classifier.model import GenreClassifier
from lab.cli import main
from lab.data.images import decode_poster
from lab.data.synthetic import make_synthetic_posters
from lab.demo import run_demo
from lab.report import write_report

CLASSIFIER_SECTIONS = ["headline", "per-genre-ap", "confusion7", "thresholds", "posters", "gradcam", "rating",
                       "curves", "decades"]
GAN_SECTIONS = ["grids", "losses", "scores", "samples", "genre-likeness"]
CLASSIFIER_RECIPE = """size = "64x96"
schedule = [[1, 0.0], [1, 1.0]]
batch_size = 32
baselines = true
"""
GAN_RECIPE = """size = "32x48"
channels = 8
z_dim = 16
batch_size = 16
steps = 20
grid_every = 5
checkpoint_every = 10
log_every = 5
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A finished demo on synthetic posters of the seven genres the confusion matrix is about, in two
    decades, so that every condition the demo samples has real test posters to be compared with."""
    os.environ["TORCH_HOME"] = str(SHARED / "torch-home")
    root = tmp_path_factory.mktemp("report")
    data = make_synthetic_posters(root / "posters", 420, seed=1, genres=SEVEN_GENRES, decades=(1980, 2010))
    (root / "classifier.toml").write_text(CLASSIFIER_RECIPE)
    (root / "gan.toml").write_text(GAN_RECIPE)
    run_demo(data, root / "demo", samples_per_condition=4, classifier_recipe=root / "classifier.toml",
             generator_recipe=root / "gan.toml", say=lambda message: None)
    return root / "demo"


# ---- the page in a real browser ----

class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: it reads
    commands on fd 3 and answers on fd 4, NUL-separated JSON), with the standard library only."""

    def __init__(self, executable: str):
        self.profile = tempfile.mkdtemp()
        commands_in, self._commands = os.pipe()
        self._answers, answers_out = os.pipe()
        # Duplicates on free numbers above 4, so that placing them at 3 and 4 in the child cannot overwrite one
        # another. (dup2 onto fixed numbers would close whatever this process already had open there.)
        high_in, high_out = (fcntl.fcntl(commands_in, fcntl.F_DUPFD, 5), fcntl.fcntl(answers_out, fcntl.F_DUPFD, 5))

        def place_fds():
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
        self.process = subprocess.Popen(
            [executable, "--headless", "--remote-debugging-pipe", "--no-first-run", "--disable-gpu",
             "--hide-scrollbars", f"--user-data-dir={self.profile}", *sandbox],
            pass_fds=(3, 4, high_in, high_out), preexec_fn=place_fds, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for fd in (commands_in, answers_out, high_in, high_out):
            os.close(fd)
        self._buffer, self._id, self.events, self.session = b"", 0, [], None

    def close(self):
        self.process.kill()
        self.process.wait()
        os.close(self._commands)
        os.close(self._answers)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, timeout: float = 60):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(timeout)
            if answer.get("id") == self._id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline - time.time()))
        return next(e for e in self.events if e.get("method") == method)

    def _read(self, timeout: float) -> dict:
        deadline = time.time() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.time()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited with status {self.process.poll()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, page: Path, width: int = 1280) -> dict:
        """Load a page in a new tab; what it showed: images, broken ones, section ids, errors, requests."""
        self.session = None
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.send("Page.navigate", {"url": page.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")
        state = self.send("Runtime.evaluate", {"returnByValue": True, "expression": """({
            images: document.images.length,
            broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
            sections: [...document.querySelectorAll('section')].map(s => s.id),
            text: document.body.innerText})"""})["result"]["value"]
        ours = [e for e in self.events if e.get("sessionId") == self.session]
        state["errors"] = (
            [e["params"]["exceptionDetails"].get("exception", {}).get("description", "an exception")
             for e in ours if e["method"] == "Runtime.exceptionThrown"]
            + [str(e["params"]["args"]) for e in ours
               if e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")]
            + [e["params"]["entry"]["text"] for e in ours
               if e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"])
        state["requests"] = [e["params"]["request"]["url"] for e in ours if e["method"] == "Network.requestWillBeSent"]
        return state

    def screenshot(self, path: Path, width: int = 1280, height: int = 2400) -> None:
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": {"x": 0, "y": 0, "width": width, "height": height,
                                                             "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def browser():
    page = Browser(chromium())
    yield page
    page.close()


def test_every_kind_of_report_loads_in_chromium_whole(demo, browser, tmp_path_factory):
    shots = tmp_path_factory.mktemp("screenshots")  # kept by pytest with the last runs' temporary folders
    pages = {"demo": (write_report(demo), [f"classifier-{s}" for s in CLASSIFIER_SECTIONS]
                      + [f"gan-{s}" for s in GAN_SECTIONS] + ["headline-figures"]),
             "classifier": (write_report(demo / "classifier"), [f"classifier-{s}" for s in CLASSIFIER_SECTIONS]),
             "gan": (write_report(demo / "gan"), [f"gan-{s}" for s in GAN_SECTIONS[:3]])}
    for kind, (page, sections) in pages.items():
        state = browser.open(page)
        assert state["broken"] == [], f"{kind}: images that did not load: {state['broken'][:5]}"
        assert state["errors"] == [], f"{kind}: console errors: {state['errors']}"
        assert set(sections) <= set(state["sections"]), f"{kind}: sections {state['sections']}"
        # Self-contained: the page itself is the only thing fetched (images are data: URIs).
        assert [u for u in state["requests"] if not u.startswith("data:")] == [page.resolve().as_uri()]
        browser.screenshot(shots / f"report-{kind}.png")
        with Image.open(shots / f"report-{kind}.png") as shot:
            assert shot.size == (1280, 2400) and np.asarray(shot.convert("L")).std() > 10  # not a blank page
    demo_state = browser.open(pages["demo"][0])
    # The demo page: 7 genres x (8 surest + 8 most wrong) posters, 4 Grad-CAMs each, grids, samples, plots.
    assert demo_state["images"] > 7 * 16 + 7 * 4
    assert "lacks" not in demo_state["text"] and "Missing" not in demo_state["text"]


@pytest.mark.slow
def test_a_run_with_missing_pieces_names_them_and_the_command_that_makes_them(demo, tmp_path, capsys):
    not_evaluated = tmp_path / "not-evaluated"
    shutil.copytree(demo / "classifier", not_evaluated, ignore=shutil.ignore_patterns("evaluation-*"))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(demo / "classifier", unfinished, ignore=shutil.ignore_patterns("classifier.json",
                                                                                   "evaluation-*", "finished.json"))
    unscored = tmp_path / "unscored-gan"
    shutil.copytree(demo / "gan", unscored)
    shutil.copytree(demo / "samples", unscored / "samples" / "s", ignore=shutil.ignore_patterns("scores.json"))
    expected = {not_evaluated: f"lab evaluate {not_evaluated}",
                unfinished: f"lab train-classifier --out {unfinished} --resume",
                demo / "gan": f"lab sample {demo / 'gan'} --genre",  # the demo keeps its samples outside the run
                unscored: f"lab score-samples {unscored / 'samples' / 's'} --classifier"}
    for run, command in expected.items():
        text = write_report(run, tmp_path / f"{run.name}.html", progress=False).read_text()
        assert "This run lacks" in text and command in text, run
    # What there is, is still shown: an unevaluated classifier's posters, an unfinished one's curves.
    assert 'id="classifier-gradcam"' in (tmp_path / "not-evaluated.html").read_text()
    assert 'id="classifier-curves"' in (tmp_path / "unfinished.html").read_text()


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path)])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and error.count("\n") == 1 and "not a run folder" in error


# ---- Grad-CAM ----

def test_grad_cam_of_a_batch_is_each_poster_alone_and_leaves_no_hook():
    torch.manual_seed(0)
    model = GenreClassifier("mobilenet_v2", 4, 2, weights=None, taps=(6,)).eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 96, 64, 3), dtype=np.uint8)
    hooks = [len(block._forward_hooks) for block in model.backbone.features]
    together, genres = grad_cam(model, images, [0, 1, 2, 3, 0], batch_size=5)
    alone = np.concatenate([grad_cam(model, images[k:k + 1], [g])[0] for k, g in enumerate([0, 1, 2, 3, 0])])
    assert together.shape == (5, 96, 64) and genres == [0, 1, 2, 3, 0]
    assert np.allclose(together, alone, atol=1e-4) and together.min() >= 0 and together.max() <= 1
    assert [len(block._forward_hooks) for block in model.backbone.features] == hooks  # the taps' own only


def test_predict_cam_writes_a_heatmap_over_each_poster_it_reads(demo, tmp_path, capsys):
    run = demo / "classifier"
    data = Path(json.loads((run / "options.json").read_text())["data"])
    posters = [data / "images" / "syn00001.jpg", data / "images" / "syn00002.jpg"]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    main_args = ["predict", str(run), *map(str, posters), str(tmp_path / "broken.jpg"), "--cam", "--cam-dir",
                 str(tmp_path / "cams"), "--json"]
    try:
        main(main_args)
    except SystemExit as e:
        assert not e.code
    printed = json.loads(capsys.readouterr().out)
    assert [Path(p["cam"]).name if p["cam"] else None for p in printed] == ["syn00001-cam.png", "syn00002-cam.png",
                                                                          None]
    info = load_run_info(run)
    pixels = np.stack([decode_poster(p, tuple(info["size"])) for p in posters])
    # Each file is its own poster under the heatmap of the genre `predict` puts first.
    heatmaps, genres = grad_cam(load_model(run, info), pixels)
    assert [info["genres"][g] for g in genres] == [next(iter(p["genres"])) for p in printed[:2]]
    for entry, image, heat in zip(printed, pixels, heatmaps):
        with Image.open(entry["cam"]) as cam:
            assert np.array_equal(np.asarray(cam), overlay(image, heat))
