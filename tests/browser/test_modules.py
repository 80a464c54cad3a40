"""The pure ES modules (view state, data shaping), run in Chromium where they live."""

from __future__ import annotations

import math


def run_module_checks(page, script: str):  # type: ignore[no-untyped-def]
    return page.evaluate(
        """async (script) => {
            const viewstate = await import('/static/js/viewstate.js');
            const shaping = await import('/static/js/shaping.js');
            return (new Function('viewstate', 'shaping', script))(viewstate, shaping);
        }""",
        script,
    )


def test_view_state_and_shaping(new_page, browser_server) -> None:  # type: ignore[no-untyped-def]
    page = new_page(bypass_csp=True)  # the checks below are built from a string
    page.goto(f"{browser_server.url}/")
    results = run_module_checks(
        page,
        """
        const { parseView, viewToSearch, toShareView, fromShareView } = viewstate;
        const { csvField, seriesCsv, groupConfigDiff, sparklinePoints, runChanges, noteDecorations,
                standaloneHtml, panelFigure, escapeMarkup, legendEntries, isFocused, unescapeMarkup,
                configTable, candidateMarkers } = shaping;
        const out = {};
        const { view, errors } = parseView('?reference=3,4&candidates=7,3&metrics=kl,reward&smoothing=0.6&mode=diff&logy=1&x0=10&x1=80');
        out.view = view; out.errors = errors;
        out.search = viewToSearch(view);
        out.roundTrip = parseView(viewToSearch(view)).view;
        out.shareRoundTrip = fromShareView(JSON.parse(JSON.stringify(toShareView(view))));
        out.bad = parseView('?reference=abc&smoothing=2').errors;
        out.csv = ['=HYPERLINK("x")', '-1.5', 'a,b', 'plain', -2, 'NaN'].map(csvField);
        out.groups = groupConfigDiff([{layer: 'objective', key: 'a'}, {layer: 'semantic', key: 'b'},
                                      {layer: 'mystery', key: 'c'}, {layer: 'semantic', key: 'd'}])
                     .map(g => [g.layer, g.entries.map(e => e.key)]);
        // The config table: the differing rows, or every row; replicas that differ each shown.
        const seed = {key: 'sampling_seed', layer: 'workload', reference_value: 1, candidate_value: 3,
                      expected: true, differs: true, replica_values: [1, 2]};
        const mode = {key: 'engine.logprobs_mode', layer: 'semantic', reference_value: 'processed',
                      candidate_value: 'raw', expected: false, differs: true, replica_values: ['processed', 'processed']};
        const same = {key: 'model', layer: 'workload', reference_value: {name: 'm'}, candidate_value: {name: 'm'},
                      expected: false, differs: false, replica_values: []};
        const unset = {key: 'extra', layer: 'mystery', reference_value: null, candidate_value: 4, differs: true};
        const configPayload = {config_diff: {'3': [seed, mode, unset]}, config_table: {'3': [same, seed, mode, unset]}};
        const shown = (groups) => groups.map(g => [g.layer, g.entries.map(r => [r.key, r.reference, r.candidate, r.differs, r.expected, r.perReplica])]);
        out.configDiff = shown(configTable(configPayload, 3, false));
        out.configEvery = shown(configTable(configPayload, 3, true));
        out.configOld = shown(configTable({config_diff: {'3': [unset]}}, 3, true));
        out.configNone = configTable(configPayload, 4, true);
        const marked = {definitions: {markers: {distance: 'D.', reference_rate: 'R.'}}, metrics: {
          kl: {markers: [{run_id: 3, metric: 'kl', step: 0, summary: 'kl: s', detail: 'd'}, {run_id: 4, metric: 'kl', step: 2, summary: 'x'}]},
          reward: {markers: [{run_id: 3, metric: 'reward', step: 36, summary: 'reward: s', detail: 'd2'}]}, entropy: {}}};
        out.markers = candidateMarkers(marked, '3');
        out.noMarkers = candidateMarkers({metrics: {kl: {markers: []}}}, 3);
        out.spark = sparklinePoints([0, 1, 2, 3], [0, 'NaN', 1, 0.5], 10, 10, 0);
        out.changes = runChanges([{id: 1, status: 'running', last_step: 5}, {id: 2, status: 'running', last_step: 5}],
                                 [{id: 1, status: 'running', last_step: 5}, {id: 2, status: 'finished', last_step: 9, name: 'b'}]);
        out.same = runChanges([{id: 1, status: 'running', last_step: 5}], [{id: 1, status: 'running', last_step: 5}]);
        const deco = noteDecorations([{id: 9, step: 12, text: '<b>x</b> & y', author: 'ana'}]);
        out.note = [deco.shapes[0].x0, deco.annotations[0].text, deco.annotations[0].hovertext];
        const payload = {
          runs: {'1': {name: 'ref'}, '2': {name: 'cand, "quoted"'}},
          figures: {kl: {overlay: {data: [{x: [0, 1], y: [1, 2]}], layout: {yaxis: {title: {text: 'kl'}}}}}},
          metrics: {kl: {series: [{run_id: 1, name: 'ref', role: 'reference', x: [0, 1, 2], y: [1, 'NaN', 3], y_min: [1, 'NaN', 3], y_max: [1, 'NaN', 3]}],
                         candidates: {'2': {diff: {x: [0, 2], y: [0.5, -1]}}}}},
        };
        out.csvOverlay = seriesCsv(payload, {metrics: ['kl', 'absent'], mode: 'overlay', xRange: [1, 2]});
        out.csvDiff = seriesCsv(payload, {metrics: ['kl'], mode: 'diff', xRange: null});
        const figure = panelFigure(payload, 'kl', {mode: 'overlay', logY: ['kl'], xRange: [0, 1]}, [{id: 1, step: 1, text: 'n'}]);
        out.legacyLog = parseView('?reference=1&metrics=kl,reward&logy=1').view.logY;
        out.oldShare = [fromShareView({reference: [1], metrics: ['kl', 'reward'], log_y: true}).logY,
                        fromShareView({reference: [1], metrics: ['kl'], log_y: false}).logY];
        // A focused panel: the server's range (linear or log), or everything with "fit all";
        // the clipped run's edge label only while focused; hidden legend groups on every panel.
        const focused = {figures: {kl: {overlay: {
          data: [{legendgroup: 'band', name: 'band', fill: 'tonexty', fillcolor: 'grey', showlegend: true},
                 {legendgroup: '2', name: 'v1 &lt;b&gt;', line: {color: 'red', dash: 'solid'}},
                 {legendgroup: '2', name: 'v1 (unsmoothed)', showlegend: false, line: {color: 'red'}}],
          layout: {yaxis: {range: [0, 1], autorange: false}, meta: {y_focus: [0, 1], y_focus_log: [-3, 0]},
                   annotations: [{name: 'clipped-run:2', text: 'v1 9'}, {text: 'marker'}]}}}}};
        const at = (view) => { const f = panelFigure(focused, 'kl', {mode: 'overlay', logY: [], fitAll: [], hidden: [], ...view}, []);
          return [f.layout.yaxis.type, f.layout.yaxis.range || null, f.layout.yaxis.autorange, f.layout.annotations.map(a => a.text),
                  f.data.map(t => t.visible !== false), f.layout.showlegend]; };
        out.focus = [at({}), at({logY: ['kl']}), at({fitAll: ['kl']}), at({hidden: ['2']})];
        const noLog = structuredClone(focused);
        noLog.figures.kl.overlay.layout.meta.y_focus_log = null;
        out.isFocused = [isFocused(focused, 'kl', {mode: 'overlay'}), isFocused(payload, 'kl', {mode: 'overlay'}),
                         isFocused(focused, 'kl', {mode: 'overlay', logY: ['kl']}), isFocused(noLog, 'kl', {mode: 'overlay', logY: ['kl']})];
        out.legend = legendEntries(focused, {metrics: ['kl', 'absent'], mode: 'overlay'});
        out.unescaped = unescapeMarkup(escapeMarkup('<b> & </b>'));
        out.figure = [figure.layout.yaxis.type, figure.layout.xaxis.range, figure.layout.shapes.length,
                      payload.figures.kl.overlay.layout.shapes === undefined];
        out.noFigure = panelFigure(payload, 'kl', {mode: 'diff'}, []);
        const html = standaloneHtml({title: '<t>', subtitle: 's', plotlyJs: 'var Plotly={};',
                                     figures: [{data: [{name: '</script><script>alert(1)</script>'}], layout: {}}], sectionsHtml: ''});
        out.html = [html.includes('</script><script>alert(1)'), html.includes('\\\\u003c/script>'), html.includes('<title>&lt;t&gt;</title>')];
        out.escaped = escapeMarkup('<a href="x">&</a>');
        return out;
        """,
    )
    # A run given as both reference and candidate is kept, for the server to refuse with its reason.
    assert results["view"] == {
        "reference": [3, 4], "candidates": [7, 3], "metrics": ["kl", "reward"], "smoothing": 0.6,
        "mode": "diff", "logY": ["kl", "reward"], "xRange": [10, 80], "xAxis": "step", "maxPoints": 2000,
    }
    assert results["errors"] == []
    assert results["search"] == "?reference=3,4&candidates=7,3&metrics=kl,reward&smoothing=0.6&mode=diff&logy=kl,reward&x0=10&x1=80"
    assert results["legacyLog"] == ["kl", "reward"]
    assert results["oldShare"] == [["kl", "reward"], []]
    all_visible = [True, True, True]
    assert results["focus"] == [
        ["linear", [0, 1], False, ["v1 9", "marker"], all_visible, False],
        ["log", [-3, 0], False, ["v1 9", "marker"], all_visible, False],
        ["linear", None, True, ["marker"], all_visible, False],
        ["linear", [0, 1], False, ["marker"], [True, False, False], False],
    ]
    assert results["isFocused"] == [True, False, True, False]
    assert results["legend"] == [
        {"group": "band", "name": "band", "colour": "grey", "dash": "solid", "band": True},
        {"group": "2", "name": "v1 <b>", "colour": "red", "dash": "solid", "band": False},
    ]
    assert results["unescaped"] == "<b> & </b>"
    assert results["roundTrip"] == results["view"] == results["shareRoundTrip"]
    assert results["bad"] == [
        'reference: "abc" is not a run id', "smoothing: must be a number in [0, 1)",
        "reference: choose at least one reference run",
    ]
    assert results["csv"] == ["\"'=HYPERLINK(\"\"x\"\")\"", "-1.5", '"a,b"', "plain", "-2", "NaN"]
    assert results["groups"] == [["semantic", ["b", "d"]], ["objective", ["a"]], ["unclassified", ["c"]]]
    seed = ["sampling_seed", "1, 2", "3", True, True, True]
    mode = ["engine.logprobs_mode", "processed", "raw", True, False, False]
    unset = ["extra", "unset", "4", True, False, False]
    assert results["configDiff"] == [["workload", [seed]], ["semantic", [mode]], ["unclassified", [unset]]]
    assert results["configEvery"] == [
        ["workload", [["model", '{"name":"m"}', '{"name":"m"}', False, False, False], seed]],
        ["semantic", [mode]], ["unclassified", [unset]],
    ]
    # A payload from before every key was sent (a frozen share link) shows its differing keys.
    assert results["configOld"] == [["unclassified", [unset]]]
    assert results["configNone"] == []
    assert results["markers"] == [
        {"metric": "kl", "step": 0, "summary": "kl: s", "detail": "d", "definition": "D. R."},
        {"metric": "reward", "step": 36, "summary": "reward: s", "detail": "d2", "definition": "D. R."},
    ]
    assert results["noMarkers"] == []
    assert results["spark"] == "0.0,10.0 6.7,0.0 10.0,5.0"
    assert results["changes"] == {"changed": True, "finished": [{"id": 2, "status": "finished", "last_step": 9, "name": "b"}]}
    assert results["same"] == {"changed": False, "finished": []}
    assert results["note"] == [12, "✎ &lt;b&gt;x&lt;/b&gt; &amp; y", "step 12 (ana): &lt;b&gt;x&lt;/b&gt; &amp; y"]
    assert results["csvOverlay"] == (
        "metric,run_id,run,role,step,value,bucket_min,bucket_max\r\n"
        "kl,1,ref,reference,1,NaN,NaN,NaN\r\nkl,1,ref,reference,2,3,3,3\r\n"
    )
    assert results["csvDiff"] == (
        "metric,run_id,run,role,step,value,bucket_min,bucket_max\r\n"
        'kl,2,"cand, ""quoted""",candidate − reference,0,0.5,,\r\n'
        'kl,2,"cand, ""quoted""",candidate − reference,2,-1,,\r\n'
    )
    # The payload's own figure is left untouched: panels draw copies.
    assert results["figure"] == ["log", [0, 1], 1, True]
    assert results["noFigure"] is None
    assert results["html"] == [False, True, True]
    assert results["escaped"] == '&lt;a href="x"&gt;&amp;&lt;/a&gt;'


def test_time_axis_shaping(new_page, browser_server) -> None:  # type: ignore[no-untyped-def]
    page = new_page(bypass_csp=True)
    page.goto(f"{browser_server.url}/")
    results = run_module_checks(
        page,
        """
        const { parseView, viewToSearch, toShareView, fromShareView } = viewstate;
        const { stepClock, clocks, timeUnit, timeFigure, wallTimeAvailability, plainNumbers } = shaping;
        const out = {};
        const timed = parseView('?reference=1&candidates=2&x=time&x0=30&x1=90');
        out.timed = [timed.view.xAxis, timed.view.xRange, viewToSearch(timed.view), timed.errors];
        out.share = [toShareView(timed.view).x_axis, fromShareView(toShareView(timed.view)).xAxis,
                     fromShareView({reference: [1]}).xAxis];
        out.badX = parseView('?reference=1&x=wall').errors;
        const clock = stepClock({steps: [0, 10, 20], seconds: [0, 5, 30]});
        out.clock = [clock(0), clock(10), clock(15), clock(20), clock(-1), clock(21)];
        // Typed arrays as the server sends them (int32 little-endian 0, 10, 20).
        out.typed = plainNumbers({dtype: 'i4', bdata: 'AAAAAAoAAAAUAAAA'});
        const payload = {
          references: [1, 3], candidates: [2],
          runs: {'1': {name: 'ref', wall_time: {origin: 100, steps: [0, 10, 20], seconds: [0, 10, 20]}},
                 '3': {name: 'replica', wall_time: {origin: 50, steps: [0, 10, 20], seconds: [0, 30, 60]}},
                 '2': {name: 'cand', wall_time: {origin: 70, steps: [0, 10, 20], seconds: [0, 100, 200]}}},
        };
        out.band = [0, 10, 15].map(clocks(payload).band);
        out.unit = [timeUnit(payload), timeUnit({runs: {'1': {wall_time: {steps: [0], seconds: [4000]}}}}),
                    timeUnit({runs: {'1': {wall_time: {steps: [0], seconds: [20000]}}}})];
        out.ok = wallTimeAvailability(payload);
        const missing = structuredClone(payload);
        missing.runs['2'].wall_time = null;
        missing.runs['3'].wall_time = null;
        out.missing = wallTimeAvailability(missing);
        missing.runs['1'].wall_time = null;
        missing.runs['4'] = {name: 'fourth', wall_time: null};
        missing.candidates = [2, 4];
        out.many = wallTimeAvailability(missing).reason;
        const old = structuredClone(payload);
        delete old.runs['2'].wall_time;
        out.old = wallTimeAvailability(old);
        const figure = {
          data: [{legendgroup: 'band', x: [0, 10, 15], y: [1, 2, 3], hovertemplate: '[%{y}, %{customdata}]<extra>band</extra>'},
                 {legendgroup: '2', x: {dtype: 'i4', bdata: 'AAAAAAoAAAAUAAAA'}, y: [1, 2, 3], hovertemplate: '%{y:.4g}<extra>%{fullData.name}</extra>'},
                 {legendgroup: '2', x: [0, 20], y: [1, 3], hoverinfo: 'skip'}],
          layout: {xaxis: {title: {text: 'step'}}, shapes: [{name: 'marker:2', xref: 'x', x0: 10, x1: 10},
                                                             {name: 'note-4', xref: 'x', x0: 15, x1: 15},
                                                             {xref: 'paper', x0: 0.5, x1: 0.5}],
                   annotations: [{name: 'marker:2', xref: 'x', x: 10, text: 'cand · step 10'}, {name: 'clipped-run:2', xref: 'paper', x: 1}]},
        };
        const before = JSON.stringify(figure);
        const moved = timeFigure(figure, payload, {xRange: [60, 120]});
        out.moved = {
          x: moved.data.map(t => t.x), text: moved.data.map(t => t.text || null),
          hover: moved.data.map(t => t.hovertemplate || null),
          shapes: moved.layout.shapes.map(s => [s.x0, s.x1]), annotations: moved.layout.annotations.map(a => [a.x, a.text || null]),
          title: moved.layout.xaxis.title.text, hoverTitle: moved.layout.xaxis.unifiedhovertitle.text,
          range: moved.layout.xaxis.range, untouched: JSON.stringify(figure) === before,
        };
        return out;
        """,
    )
    assert results["timed"] == ["time", [30, 90], "?reference=1&candidates=2&x=time&x0=30&x1=90", []]
    assert results["share"] == ["time", "time", "step"]
    assert results["badX"] == ["x: must be step or time"]
    assert results["clock"][:4] == [0, 5, 17.5, 30]
    assert math.isnan(results["clock"][4]) and math.isnan(results["clock"][5])  # outside the run
    assert results["typed"] == [0, 10, 20]
    # The band's clock is the median of the references' (two: their mean).
    assert results["band"] == [0, 20, 30]
    assert results["unit"] == [{"name": "min", "seconds": 60}, {"name": "min", "seconds": 60}, {"name": "h", "seconds": 3600}]
    assert results["ok"] == {"ok": True, "reason": ""}
    assert results["missing"] == {
        "ok": False, "reason": "replica and cand recorded no wall times (no times were sent with their points), so x is step",
    }
    assert results["many"] == "ref, replica and 2 others recorded no wall times (no times were sent with their points), so x is step"
    assert results["old"] == {"ok": False, "reason": "this comparison carries no wall times"}
    moved = results["moved"]
    # Minutes (the longest run is 200 s): the band at the references' median, the candidate on its own clock.
    assert moved["x"] == [[0, 20 / 60, 0.5], [0, 100 / 60, 200 / 60], [0, 200 / 60]]
    assert moved["text"] == [[0, 10, 15], [0, 10, 20], [0, 20]]
    assert moved["hover"] == [
        "[%{y}, %{customdata}] · step %{text}<extra>band</extra>",
        "%{y:.4g} · step %{text}<extra>%{fullData.name}</extra>",
        None,
    ]
    # The marker on the candidate's clock, the note on the band's, paper-anchored items untouched.
    assert moved["shapes"] == [[100 / 60, 100 / 60], [0.5, 0.5], [0.5, 0.5]]
    assert moved["annotations"] == [[100 / 60, "cand · step 10"], [1, None]]
    assert moved["title"] == "relative wall time (minutes since each run’s first point)"
    assert moved["hoverTitle"] == "%{x:.3~f} min"
    assert moved["range"] == [1, 2]
    assert moved["untouched"] is True
