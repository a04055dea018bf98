"""`lab app`: a local web page to read a poster and to make posters, over the lab's Python API.

Three tabs: read a poster (its genres, decade and rating, and a Grad-CAM heatmap); make posters
with any generator run the registry knows, each beside its nearest training poster; and the runs of
a folder, with their report pages. The page calls `lab.api` only, and nothing in the lab imports
this module but the CLI.

Nothing leaves the machine: analytics are off, the server binds 127.0.0.1 unless told otherwise,
it serves files only from its own temporary folder (gradio's cache, which holds the uploads and
every picture the page shows), and it refuses gradio's route that would fetch a URL for a page.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab import api
from lab.classifier.inference import READERS
from lab.errors import LabError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_UPLOAD = "20mb"  # a poster is well under 1 MB; gradio refuses a larger upload before it is stored
QUEUE_SIZE = 64  # requests waiting at most; beyond that a caller is told the queue is full
MAX_POSTERS = 32  # per request of "Make posters"
TOP_GENRES = 5
MOST_PROBABLE = "(most probable genre)"
SAMPLERS = ("ddim", "dpm++")
# The heatmap is at the classifier's own size, often 96x144: shown enlarged, so that one can see where it looks.
PAGE_CSS = "#heatmap img { height: 420px; width: auto; max-width: 100%; object-fit: contain; }"


def require_gradio() -> None:
    if importlib.util.find_spec("gradio") is None:
        raise LabError('lab app needs gradio, an optional extra: pip install -e ".[app]" (or pip install gradio)')


@dataclass
class GeneratorRun:
    path: Path
    kind: str  # its kind's name: gan, diffusion, ...
    info: dict  # its run file
    neighbours: object  # lab.api.nearest_training_posters

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.kind})"


class PosterApp:
    """The runs the page works on, each loaded once, and what each of the page's actions does.

    Every action takes plain values and returns plain values (numpy posters, dicts, text), so that
    tests and the page share it; a mistake of the user's is a `LabError` with a one-line message.
    """

    def __init__(self, classifier: Path | None = None, generators: list[Path] = (), upsamplers: list[Path] = (),
                 runs: Path | None = None):
        self.runs_dir = Path(runs) if runs is not None else None
        found = _finished_runs(self.runs_dir) if self.runs_dir is not None else []
        if classifier is None:
            classifier = next((p for p, kind in reversed(found) if kind.name in READERS), None)
        if classifier is not None:
            _check_kind(classifier, "--classifier", lambda k: k.name in READERS,
                        "a classifier run (or an ensemble of them)")
            self.classifier = api.open_classifier(classifier)
        else:
            self.classifier = None
        generators = _unique([*generators, *(p for p, kind in found if kind.sampler is not None)])
        upsamplers = _unique([*upsamplers, *(p for p, kind in found if kind.enlarger is not None)])
        self.generators: dict[str, GeneratorRun] = {}
        for path in generators:
            kind = _check_kind(path, "--generator", lambda k: k.sampler is not None, "a generator run")
            run = GeneratorRun(Path(path), kind.name, api.run_info(path), api.nearest_training_posters(path))
            self.generators[run.label] = run
        self.upsamplers: dict[str, Path] = {}
        for path in upsamplers:
            _check_kind(path, "--upsampler", lambda k: k.enlarger is not None, "an upsampler run")
            self.upsamplers[f"{Path(path).name} (upsampler)"] = Path(path)
        if self.classifier is None and not self.generators:
            raise LabError("nothing to show: give --classifier RUN, --generator RUN, or --runs DIR with finished runs")
        self.temp = Path(tempfile.mkdtemp(prefix="lab-app-"))

    # ---- Read a poster ----

    def classify(self, file: str | None, heatmap_genre: str | None = None, film_genres: list[str] | None = None,
                 film_year: str | int | None = None) -> tuple[dict, str, np.ndarray]:
        """(the top genres with their probabilities, the decade and rating in words, the poster with the
        Grad-CAM heatmap of `heatmap_genre` over it); the figures are `lab.predict`'s."""
        if self.classifier is None:
            raise LabError("this app has no classifier: start it with --classifier RUN")
        if not file:
            raise LabError("drop a poster image first")
        year = _year(film_year)
        prediction, = self.classifier.predict_files([file], list(film_genres or []) or None, year)
        if prediction.error:
            raise LabError(f"cannot read this file as a poster: {prediction.error}")
        genre = None if heatmap_genre in (None, "", MOST_PROBABLE) else heatmap_genre
        heat, shown = api.grad_cam(self.classifier, self.classifier.decode(file), genre)
        words = f"**Decade:** {prediction.decade}s ({prediction.decade_prob:.0%})"
        if prediction.rating is not None:
            told = "told the film's genres and year" if film_genres or year is not None else "from the poster alone"
            words += f"  \n**IMDb rating:** {prediction.rating:.1f} ({told})"
        words += f"  \n**Heatmap:** where the classifier saw {shown}"
        return dict(prediction.genres[:TOP_GENRES]), words, heat

    # ---- Make posters ----

    def generator(self, label: str) -> GeneratorRun:
        if label not in self.generators:
            raise LabError(f"no generator {label!r} in this app; it has {', '.join(self.generators) or 'none'}")
        return self.generators[label]

    def generate(self, generator: str, genres: list[str] | str | None, decade: str | int | None, n: int = 8,
                 seed: int = 0, sampler: str | None = None, steps: int | None = None,
                 guidance: float | None = None, upsampler: str | None = None, *, progress: bool = False):
        """(posters as [(uint8 image, caption)], each one's nearest training poster likewise, a summary);
        the posters are `lab.sample`'s with the same run, condition, seed and settings."""
        run = self.generator(generator)
        genres = [genres] if isinstance(genres, str) else list(genres or [])
        if not genres or decade in (None, ""):
            raise LabError("pick at least one genre and a decade")
        n = int(n)
        if not 1 <= n <= MAX_POSTERS:
            raise LabError(f"make 1 to {MAX_POSTERS} posters at a time, not {n}")
        settings = {}
        if run.kind == "diffusion":
            settings = {"sampler": sampler, "steps": None if steps is None else int(steps),
                        "guidance": None if guidance is None else float(guidance)}
        enlarger = None
        if upsampler not in (None, "", "none"):
            if upsampler not in self.upsamplers:
                raise LabError(f"no upsampler {upsampler!r} in this app")
            enlarger = self.upsamplers[upsampler]
        started = time.perf_counter()
        made = api.sample(run.path, ["+".join(genres)], [str(decade)], n, int(seed), upsampler=enlarger,
                          progress=progress, **settings)
        captions = [""] * len(made.images)
        if self.classifier is not None:
            for k, p in enumerate(self.classifier.predict_pixels(made.images)):
                captions[k] = ", ".join(f"{g} {q:.0%}" for g, q in p.genres[:3])
        index, ratio = run.neighbours.find(made.images)
        nearest = [(run.neighbours.images[i], f"{run.neighbours.ids[i]} (nearest / second nearest {r:.2f})")
                   for i, r in zip(index, ratio)]
        summary = (f"{len(made.images)} posters of {' + '.join(genres)}, {decade}s from {run.label} at step "
                   f"{made.summary.get('step')}, seed {int(seed)}, in {time.perf_counter() - started:.1f} s")
        return list(zip(made.images, captions)), nearest, summary

    # ---- Runs ----

    def runs_table(self) -> list[list[str]]:
        if self.runs_dir is None:
            return []
        return [[r.path.name, r.kind, r.precision, r.status, r.progress, r.headline, r.age_text]
                for r in api.list_runs(self.runs_dir)]

    def report(self, name: str | None) -> tuple[str, str]:
        """(a frame showing the `lab report` page of the run `name` in the runs folder, the page's file)."""
        if self.runs_dir is None:
            raise LabError("this app was started without --runs DIR")
        runs = {r.path.name: r.path for r in api.list_runs(self.runs_dir)}
        if name not in runs:
            raise LabError(f"no run {name!r} in {self.runs_dir}")
        page = api.report(runs[name], self.temp / f"report-{name}.html")
        frame = (f'<iframe title="report of {html.escape(name)}" srcdoc="{html.escape(page.read_text())}" '
                 'style="width:100%;height:80vh;border:1px solid #ccc"></iframe>')
        return frame, str(page)

    def close(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)


def _finished_runs(folder: Path) -> list[tuple[Path, object]]:
    """(path, kind) of each finished run in `folder`, and in each demo folder in it, oldest first."""
    out = []
    for status in api.list_runs(folder):
        if status.status != "finished":
            continue
        if status.kind == "demo":
            out += _finished_runs(status.path)
        else:
            out.append((status.path, api.run_kind(status.path)))
    return out


def _check_kind(path: Path, option: str, fits, what: str):
    kind = api.run_kind(path)
    if not fits(kind):
        raise LabError(f"{option} {path} is a {kind.title} run, not {what}")
    return kind


def _unique(paths) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        if Path(p).resolve() not in seen:
            seen.add(Path(p).resolve())
            out.append(Path(p))
    return out


# ---- the page ----

def _year(text: str | int | None) -> int | None:
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise LabError(f"the film's year is a number like 1994, not {text!r}")
    return int(text)


def _shown_to_user(action):
    """A LabError becomes gradio's one-line message on the page (and the error a gradio_client caller gets)."""
    import gradio as gr

    @functools.wraps(action)
    def call(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except LabError as e:
            raise gr.Error(str(e), print_exception=False) from None
    return call


def build_page(app: PosterApp):
    """The gradio page over `app`: its endpoints are /classify, /generate, /runs and /report."""
    import gradio as gr

    genres = app.classifier.genres if app.classifier is not None else []
    with gr.Blocks(title="Poster Lab", analytics_enabled=False) as page:
        gr.Markdown("# Poster Lab\nRead a movie poster, or make new ones, with the lab's runs.")
        with gr.Tab("Read a poster", visible=app.classifier is not None):
            with gr.Row():
                with gr.Column():
                    poster = gr.File(label="Poster (an image file)", file_types=["image"], type="filepath")
                    heatmap_genre = gr.Dropdown([MOST_PROBABLE, *genres], value=MOST_PROBABLE,
                                                label="Heatmap of the genre")
                    film_genres = gr.Dropdown(genres, multiselect=True, label="The film's genres (optional, for "
                                                                              "the rating)")
                    # A Textbox, not a Number: an empty Number reaches the server as 0, not as "not given".
                    film_year = gr.Textbox(label="The film's year (optional, for the rating)", placeholder="e.g. 1994")
                    read = gr.Button("Read the poster", variant="primary", elem_id="read")
                with gr.Column():
                    genre_label = gr.Label(num_top_classes=TOP_GENRES, label="Genres", elem_id="genres")
                    words = gr.Markdown()
                    heat = gr.Image(label="Grad-CAM heatmap", format="png", interactive=False, elem_id="heatmap")
            inputs, outputs = [poster, heatmap_genre, film_genres, film_year], [genre_label, words, heat]
            classify = _shown_to_user(lambda f, g, fg, y, progress=gr.Progress(): app.classify(f, g, fg, y))
            read.click(classify, inputs, outputs, api_name="classify")
            poster.upload(classify, inputs, outputs, api_name=False)
        with gr.Tab("Make posters", visible=bool(app.generators)):
            first = next(iter(app.generators.values()), None)
            with gr.Row():
                with gr.Column(scale=1):
                    generator = gr.Dropdown(list(app.generators), value=first and first.label, label="Generator run",
                                            elem_id="generator")
                    genre = gr.Dropdown(first.info["genres_seen"] if first else [], multiselect=True,
                                        value=first.info["genres_seen"][:1] if first else None,
                                        label="Genre(s): several make one poster of all of them")
                    decade = gr.Dropdown([str(d) for d in first.info["decades_seen"]] if first else [],
                                         value=str(first.info["decades_seen"][-1]) if first else None, label="Decade")
                    n = gr.Slider(1, MAX_POSTERS, value=8, step=1, label="How many")
                    seed = gr.Number(0, precision=0, label="Seed (the same seed makes the same posters)")
                    diffusion = first is not None and first.kind == "diffusion"
                    sampler = gr.Radio(list(SAMPLERS), value="dpm++", label="Sampler (diffusion)", visible=diffusion)
                    steps = gr.Slider(1, 200, value=25, step=1, label="Sampling steps (diffusion)", visible=diffusion)
                    guidance = gr.Slider(0, 20, value=3, step=0.5, label="Guidance (diffusion)", visible=diffusion)
                    upsampler = gr.Dropdown(["none", *app.upsamplers], value="none",
                                            label="Upsampler (a generator of half its size)", elem_id="upsampler")
                    make = gr.Button("Make posters", variant="primary", elem_id="make")
                with gr.Column(scale=3):
                    summary = gr.Markdown()
                    posters = gr.Gallery(label="Posters, with the classifier's top genres", columns=4,
                                         format="png", height="auto", object_fit="contain", elem_id="posters")
                    nearest = gr.Gallery(label="The nearest training poster of each (the memorisation check's)",
                                         columns=4, format="png", height="auto", object_fit="contain",
                                         elem_id="nearest")

            def chosen(label):
                run = app.generator(label)
                diffusion = run.kind == "diffusion"
                return (gr.update(choices=run.info["genres_seen"], value=run.info["genres_seen"][:1]),
                        gr.update(choices=[str(d) for d in run.info["decades_seen"]],
                                  value=str(run.info["decades_seen"][-1])),
                        *(gr.update(visible=diffusion) for _ in range(3)))

            generator.change(_shown_to_user(chosen), [generator], [genre, decade, sampler, steps, guidance],
                             api_name=False)
            generate = _shown_to_user(
                lambda g, ge, d, k, s, sa, st, gu, up, progress=gr.Progress(track_tqdm=True):
                    app.generate(g, ge, d, k, s, sa, st, gu, up, progress=True))
            make.click(generate, [generator, genre, decade, n, seed, sampler, steps, guidance, upsampler],
                       [posters, nearest, summary], api_name="generate")
        with gr.Tab("Runs", visible=app.runs_dir is not None):
            table = gr.Dataframe(app.runs_table(), headers=["run", "kind", "precision", "status", "progress", "headline", "age"],
                                 interactive=False, label=f"Runs in {app.runs_dir}")
            with gr.Row():
                refresh = gr.Button("Refresh")
                which = gr.Dropdown([row[0] for row in app.runs_table()], label="Run", scale=3, elem_id="run")
                show = gr.Button("Open its report", variant="primary", elem_id="open-report")
            report_file = gr.File(label="The report page (self-contained HTML)", interactive=False)
            report_frame = gr.HTML()

            def refreshed():
                rows = app.runs_table()
                return rows, gr.update(choices=[row[0] for row in rows])

            refresh.click(refreshed, None, [table, which], api_name="runs")
            show.click(_shown_to_user(lambda name, progress=gr.Progress(): app.report(name)), [which],
                       [report_frame, report_file], api_name="report")
    page.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return page


class _NoUrlFetch:
    """ASGI middleware: gradio's /file= route fetches an http(s) URL for the page; here it answers 403."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "/file=" in scope["path"]:
            target = scope["path"].split("/file=", 1)[1].lower()
            if target.startswith(("http:", "https:", "//")) or "://" in target:
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"this app fetches nothing from outside"})
                return
        await self.app(scope, receive, send)


def launch(app: PosterApp, host: str = "127.0.0.1", port: int | None = None):
    """Serve the page (in the background); returns the gradio page, whose `local_url` it is at."""
    require_gradio()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from starlette.middleware import Middleware
    # Uploads and every picture shown go there, and only there. gradio reads it at each request, so it stays
    # set for the life of the process: one app per process.
    os.environ["GRADIO_TEMP_DIR"] = str(app.temp)
    page = build_page(app)
    page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=False,
                max_file_size=MAX_UPLOAD, ssr_mode=False, mcp_server=False, allowed_paths=[], css=PAGE_CSS,
                app_kwargs={"middleware": [Middleware(_NoUrlFetch)]})
    return page
