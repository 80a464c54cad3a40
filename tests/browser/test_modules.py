"""The pure ES modules (view state, data shaping), run in Chromium where they live."""

from __future__ import annotations


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
        "mode": "diff", "logY": ["kl", "reward"], "xRange": [10, 80], "maxPoints": 2000,
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
