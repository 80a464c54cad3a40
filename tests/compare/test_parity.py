from backend.compare.parity import parity_findings, summarise_parity

from .parity_series import parity_series


def findings(candidate, references):
    return parity_findings(summarise_parity([candidate]), summarise_parity(references))


def test_a_mean_offset_points_at_the_semantic_layer():
    result = findings(parity_series(1, offset=-0.05), [parity_series(2)])
    assert result.mean_offset is True
    assert result.numerics_excess is None  # cannot be read while an offset dominates
    assert result.candidate["logprob_diff_mean"] < -0.04


def test_zero_mean_with_a_larger_absolute_difference_points_at_numerics():
    result = findings(parity_series(1, abs_diff=7e-4), [parity_series(2), parity_series(3)])
    assert result.mean_offset is False
    assert result.numerics_excess is True
    assert result.update_path is False


def test_staleness_points_at_the_update_path():
    more_lag = findings(parity_series(1, lag_share=0.5), [parity_series(2)])
    assert more_lag.update_path is True
    grows = findings(
        parity_series(1, lag_share=0.3, stale_factor=4.0), [parity_series(2, lag_share=0.3)]
    )
    assert grows.update_path is True


def test_backend_parity_reads_as_no_finding():
    result = findings(parity_series(1), [parity_series(2), parity_series(3)])
    assert (result.mean_offset, result.numerics_excess, result.update_path) == (False, False, False)


def test_missing_metrics_give_unknown_findings():
    nothing = parity_findings(None, summarise_parity([parity_series(2)]))
    assert not nothing.available and nothing.mean_offset is None
    no_reference = parity_findings(summarise_parity([parity_series(1)]), None)
    assert no_reference.mean_offset is False
    assert no_reference.numerics_excess is None
    assert summarise_parity([{}, {}]) is None
