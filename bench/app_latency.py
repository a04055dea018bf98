"""`lab app` timings over real runs: start-up, and the round trips of "Read a poster" and "Make posters".

    TORCH_HOME=../shared/torch-home python bench/app_latency.py --runs runs/demo [--repeats 10]
        [--classifier RUN] [--generator RUN ...] [--upsampler RUN ...] [--screenshots samples]

It starts the app in this process as `lab app` does with the same options (each run loaded once), then
calls the page's endpoints over HTTP with gradio_client, as a browser's requests go: /classify with test
posters the classifier never saw (genres, decade, rating and the Grad-CAM heatmap), and /generate of 8
posters of each generator run, alone and through each upsampler (each poster with the classifier's top
genres and its nearest training poster). It prints the median and the slowest of the repeats. The first
call of each is timed apart: it is the one that warms the network up.

With --screenshots DIR it also opens the page in headless Chromium (chromium and chromium-driver) and saves
a picture of each tab: DIR/app-read.png, DIR/app-make.png (the first generator, through the first
upsampler if there is one) and DIR/app-runs.png (with the first generator's report opened).
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image

from lab.app import MOST_PROBABLE, PosterApp, launch
from lab.data.poster_dataset import open_run_posters
from lab.runs import Run


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def report(name: str, seconds: list[float]) -> None:
    first, rest = seconds[0], seconds[1:]
    print(f"{name:<66} first {first:6.2f} s   then median {statistics.median(rest):6.2f} s, "
          f"slowest {max(rest):6.2f} s over {len(rest)}")


def test_posters(classifier, n: int) -> list[str]:
    posters = open_run_posters(Run.open(classifier.run_dir), classifier.size, progress=False)
    return list(posters.table.posters.iloc[posters.parts["test"][:n]]["path"])


def screenshots(url: str, poster: str, app: PosterApp, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)

    def wait(condition, seconds=180):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if found := condition():
                return found
            time.sleep(0.3)
        raise SystemExit("the page did not show it in time")

    def tab(name):
        next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if name in b.text).click()

    def choose(elem_id, option):
        browser.find_element(By.CSS_SELECTOR, f"#{elem_id} input").click()
        shown = wait(lambda: [o for o in browser.find_elements(By.CSS_SELECTOR, "[role=option]")
                              if option in o.text.splitlines()])
        shown[0].click()

    def shot(name):
        time.sleep(1.5)  # the last pictures fade in
        browser.save_screenshot(str(out / name))
        with Image.open(out / name) as page:  # 256 colours: a third of the bytes, for samples/
            page.convert("RGB").quantize(256).save(out / name, optimize=True)

    try:
        browser.get(url)
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(poster)
        wait(lambda: "Heatmap:" in browser.find_element(By.TAG_NAME, "body").text)
        shot("app-read.png")
        tab("Make posters")
        wait(lambda: browser.find_element(By.ID, "make").is_displayed())
        if app.upsamplers:
            choose("upsampler", next(iter(app.upsamplers)))
        browser.find_element(By.ID, "make").click()
        wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#nearest img")) >= 8)
        shot("app-make.png")
        tab("Runs")
        choose("run", next(iter(app.generators.values())).path.name)
        browser.find_element(By.ID, "open-report").click()
        wait(lambda: browser.find_elements(By.CSS_SELECTOR, "iframe"))
        shot("app-runs.png")
    finally:
        browser.quit()
    print(f"screenshots in {out}: app-read.png, app-make.png, app-runs.png")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, help="a folder of runs, as lab app --runs (e.g. a lab demo folder)")
    p.add_argument("--classifier", type=Path, help="as lab app --classifier")
    p.add_argument("--generator", type=Path, action="append", default=[], help="as lab app --generator")
    p.add_argument("--upsampler", type=Path, action="append", default=[], help="as lab app --upsampler")
    p.add_argument("--repeats", type=int, default=10, help="timed calls of each endpoint after the first")
    p.add_argument("--screenshots", type=Path, help="save a picture of each tab into this folder")
    args = p.parse_args()

    start = time.perf_counter()
    app = PosterApp(args.classifier, args.generator, args.upsampler, args.runs)
    loaded = time.perf_counter() - start
    page = launch(app)
    print(f"threads {os.environ.get('OMP_NUM_THREADS', 'all')}; runs loaded in {loaded:.2f} s, page serving "
          f"{time.perf_counter() - start - loaded:.2f} s later")
    try:
        client = Client(page.local_url, verbose=False, download_files=tempfile.mkdtemp())
        posters = test_posters(app.classifier, args.repeats + 1)
        report("/classify (a test poster, with Grad-CAM)",
               [timed(lambda: client.predict(handle_file(f), MOST_PROBABLE, [], "", api_name="/classify"))
                for f in posters])
        for label, run in app.generators.items():
            decade = str(run.info["decades_seen"][-1])
            for upsampler in ["none", *app.upsamplers]:
                report(f"/generate 8 posters of {label}" + (f" + {upsampler}" if upsampler != "none" else ""),
                       [timed(lambda s=s: client.predict(label, run.info["genres_seen"][:1], decade, 8, s, "dpm++",
                                                         25, 3.0, upsampler, api_name="/generate"))
                        for s in range(args.repeats + 1)])
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            screenshots(page.local_url, posters[0], app, args.screenshots)
    finally:
        page.close()
        app.close()


if __name__ == "__main__":
    main()
