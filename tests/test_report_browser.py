"""report.html in headless Chromium: one series per impl with data, tooltips naming the impl on hover, series
highlighted from their legend entry, skipped and failed impls visible, no console errors, no network."""

from __future__ import annotations

import os

import pytest

from combine_data import MEASURED, NOT_MEASURED, WRONG, Workload, make_run, run_combine

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# The H100 results' mix: the seed and long suites (one shape family) and the kernel suite's four families.
WIDE = ([Workload.attention(f"flux_L{i}", 1, 1024 + 128 * i, 24, 24, 128, "bfloat16", False) for i in range(6)]
        + [Workload.attention(f"long_L{i}", 1, 4096 + 256 * i, 24, 24, 128, "bfloat16", False) for i in range(8)]
        + [Workload.attention(f"kern_d{d}_s{s}_{'c' if c else 'nc'}", 1, s, 32, 32, d, "bfloat16", c)
           for d in (64, 128) for c in (False, True) for s in (4096, 8192)])


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    return _page(browser, tmp_path_factory, {"garbage": True}, 1280)


@pytest.fixture(scope="module")
def wide_page(browser, tmp_path_factory):
    return _page(browser, tmp_path_factory, {"workloads": WIDE}, 1400)


def _page(browser, tmp_path_factory, run_args: dict, width: int):
    root = tmp_path_factory.mktemp("browser")
    res = run_combine(make_run(root / "in", **run_args), root / "out")
    assert res.returncode == 0, res.stderr
    pg = browser.new_page(viewport={"width": width, "height": 900})
    pg.problems, pg.requests = [], []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda exc: pg.problems.append(f"page error: {exc}"))
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.goto((root / "out" / "report.html").as_uri())
    pg.wait_for_load_state("load")
    return pg


def test_the_latency_chart_has_one_series_per_impl_with_data(page):
    slugs = page.locator("#attention-latency-chart .series").evaluate_all("els => els.map(e => e.dataset.series)")
    assert sorted(slugs) == sorted(MEASURED)
    assert page.locator("#attention-throughput-chart .series").count() == len(MEASURED)


def test_hovering_a_point_shows_a_tooltip_naming_its_impl_backend_and_versions(page):
    page.locator('#attention-latency-chart .points[data-series="torch_math"] .pt').first.hover()
    tip = page.locator("#tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert text.splitlines()[0] == "torch_math"
    assert "MATH" in text and "torch 2.8.0+cu128" in text and "flux_L128" in text and "p50" in text


def test_every_point_can_be_hovered_even_in_a_tight_cluster(page):
    for slug in ("torch_flash", "hf_kernels_flash_attn", "torch_compiled_default"):
        page.locator(f'#attention-latency-detail-chart .points[data-series="{slug}"] .pt').nth(3).hover(timeout=5000)
        assert page.locator("#tooltip").inner_text().splitlines()[0] == slug


def test_hovering_a_legend_entry_highlights_its_series_and_names_it(page):
    page.locator(f'#attention-latency-chart .legend-entry[data-series="{WRONG}"]').hover()
    tip = page.locator("#tooltip")
    tip.wait_for(state="visible")
    assert WRONG in tip.inner_text() and "triton" in tip.inner_text() and "sageattention 2.2.0" in tip.inner_text()
    page.wait_for_timeout(300)  # the fade is a short CSS transition
    opacity = page.eval_on_selector_all(
        "#attention-latency-chart .series", "els => Object.fromEntries(els.map(e => [e.dataset.series, +getComputedStyle(e).opacity]))")
    assert opacity[WRONG] == 1 and all(v < 0.5 for k, v in opacity.items() if k != WRONG)
    page.mouse.move(5, 5)
    tip.wait_for(state="hidden")


def test_skipped_and_failed_impls_are_visible_with_their_reasons(page):
    section = page.locator("#not-measured")
    assert section.is_visible()
    for name in NOT_MEASURED:
        assert section.locator(f'.missing[data-impl="{name}"]').is_visible()
        assert page.locator(f'#attention-latency .missing-entry[data-impl="{name}"]').is_visible()
    assert "libcudnn.so.9" in section.inner_text()


def test_the_page_logs_no_errors_fetches_nothing_and_repeats_no_id(page):
    assert page.problems == []
    ids = page.eval_on_selector_all("[id]", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))
    assert all(u.startswith(("file://", "data:")) for u in page.requests), page.requests


def test_the_summary_tables_fit_a_1400px_window_with_the_geomean_column_in_view(wide_page):
    pg = wide_page
    assert pg.evaluate("document.documentElement.scrollWidth") <= 1400
    overflowing = pg.eval_on_selector_all(
        "h2 ~ .scroll", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 60))")
    assert overflowing == []
    geo = pg.locator("#summary-attention th", has_text="geomean p50")
    box = geo.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1400
    assert pg.locator("#summary-attention tbody tr").count() == len(MEASURED)
    assert pg.problems == []
