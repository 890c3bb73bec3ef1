-- The current definition of the view, re-applied by `abstream sink migrate` (it replaces what migrations
-- 0004, 0005 and 0008 created). The report itself reads the aggregates instead (sinks/variant_report.py),
-- which give the same rows without scanning the detail; this view stays for analysts and as the reference.
--
-- The analyst's view: one row per (experiment, variant), with the experiment's health repeated on each.
--
--     SELECT * FROM experiment_report(policy = 'exclude') WHERE experiment = 'moon_mars'
--
-- policy (required): what to do with units that logged more than one variant (variant_switches):
--   'exclude'    removes them from units and conversions;
--   'first_seen' counts them in the variant of their first exposure.
--
-- Read from the deduplicated detail tables (FINAL), so no replay can change a number.
-- (greatest/least skip NULLs in this ClickHouse version, hence the explicit IS NULL guards.)
-- Definitions of the statistics (sinks/stats.py computes the same in Python; both are tested against scipy):
--   units             distinct units with a first exposure; a unit's variant is that of its earliest one
--   converting_units  units with at least one attributed conversion; conversions = conversion events
--   rate              converting_units / units; ci_low/ci_high: 95% Wald interval rate +- 1.96 * sqrt(rate(1-rate)/units),
--                     clipped to [0, 1] (the seed simulator's "+-" is the same with 2 standard errors)
--   control           the latest definition's fallback_variant if it has a row, else the first variant by name
--   lift              rate / control_rate - 1, 95% CI by the delta method
--   p_value           two-sided pooled two-proportion z-test against the control: erfc(|z| / sqrt(2))
--   srm_p             chi-square goodness of fit of the units per variant against the latest revision's
--                     weights (variants with weight > 0), k - 1 degrees of freedom, survival function in
--                     closed form; 0 when a zero-weight variant has units; srm_flag = srm_p < 0.001
--   mismatches        flagged exposures (assignment_flags, reason other than multiple_variants);
--                     mismatch_rate = mismatches / exposures (first exposures plus their folded duplicates)
--   multi_variant_units / multi_variant_rate  units in variant_switches, over all exposed units
--
-- A conversion counts only when it is attributed to the unit's earliest first exposure (0005: the jobs correct
-- a first exposure when an earlier one arrives late, and re-attribute the buffered conversions to it).
--
-- The sample-ratio-mismatch test is stratified by definition revision (0008):
--
-- Ramping an experiment up (revision 1 at 90/10, revision 2 at 50/50) changes the weights units were
-- assigned with; comparing all units with the latest weights flagged a mismatch that is not one. Now each
-- unit counts in the revision its first exposure names, and
--   srm_chi2 = sum over revisions r and their weighted variants v of (o_rv - n_r w_rv / W_r)^2 / (n_r w_rv / W_r)
--   srm_dof  = sum over revisions of (weighted variants - 1)
-- (independent multinomials, one per revision; one revision gives the plain test). Units of a revision with
-- no known definition, or in a variant it does not list, are left out (their exposures are flagged); units
-- in a variant their revision weights 0 are a certain mismatch (p = 0), as before. expected_share is the
-- share the revisions' weights predict for the units seen (the latest weights while there are none).
-- Everything else is as in 0005.

CREATE OR REPLACE VIEW experiment_report AS
WITH
definitions AS (
    SELECT key AS experiment, max(revision) AS latest_revision,
           argMax(variant_names, revision) AS names, argMax(variant_weights, revision) AS weights,
           argMax(fallback_variant, revision) AS fallback
    FROM experiment_definitions FINAL
    GROUP BY key
),
multi_variant AS (
    SELECT DISTINCT experiment, unit_id FROM variant_switches FINAL WHERE reason = 'multiple_variants'
),
exposed AS (
    SELECT experiment, unit_id, argMin(variant, (exposure_ts, event_id)) AS variant,
           argMin(event_id, (exposure_ts, event_id)) AS first_event_id,
           sum(1 + duplicates) AS exposures, max(revision) AS top_revision,
           argMin(revision, (exposure_ts, event_id)) AS first_revision
    FROM first_exposures FINAL
    GROUP BY experiment, unit_id
),
counted AS (
    SELECT experiment, unit_id, variant, first_revision AS revision FROM exposed
    WHERE throwIf({policy:String} NOT IN ('exclude', 'first_seen'),
                  'experiment_report: policy must be \'exclude\' or \'first_seen\'') = 0
      AND ({policy:String} = 'first_seen' OR (experiment, unit_id) NOT IN (SELECT experiment, unit_id FROM multi_variant))
),
unit_conversions AS (
    SELECT c.experiment AS experiment, c.unit_id AS unit_id, count() AS conversions, countIf(c.late) AS late_conversions
    FROM conversions AS c FINAL
    INNER JOIN exposed AS e
        ON c.experiment = e.experiment AND c.unit_id = e.unit_id AND c.exposure_event_id = e.first_event_id
    GROUP BY c.experiment, c.unit_id
),
observed AS (
    SELECT u.experiment AS experiment, u.variant AS variant, count() AS units,
           countIf(ifNull(c.conversions, 0) > 0) AS converting_units,
           sum(ifNull(c.conversions, 0)) AS conversions, sum(ifNull(c.late_conversions, 0)) AS late_conversions
    FROM counted AS u
    LEFT JOIN unit_conversions AS c ON u.experiment = c.experiment AND u.unit_id = c.unit_id
    GROUP BY experiment, variant
),
variants AS (
    SELECT experiment, variant, sum(units) AS units, sum(converting_units) AS converting_units,
           sum(conversions) AS conversions, sum(late_conversions) AS late_conversions,
           max(is_defined) AS defined, max(weight) AS weight
    FROM (
        SELECT experiment, variant, units, converting_units, conversions, late_conversions,
               0 AS is_defined, toInt32(0) AS weight
        FROM observed
        UNION ALL
        SELECT experiment, variant, 0, 0, 0, 0, 1, weight
        FROM definitions ARRAY JOIN names AS variant, weights AS weight
    )
    GROUP BY experiment, variant
),
controls AS (
    SELECT v.experiment AS experiment,
           if(countIf(v.variant = d.fallback) > 0, any(d.fallback), min(v.variant)) AS control
    FROM variants AS v LEFT JOIN definitions AS d ON v.experiment = d.experiment
    GROUP BY v.experiment
),
control_counts AS (
    SELECT v.experiment AS experiment, v.units AS control_units, v.converting_units AS control_converting_units
    FROM variants AS v INNER JOIN controls AS k ON v.experiment = k.experiment AND v.variant = k.control
),
srm_inputs AS (
    SELECT experiment, units, weight FROM variants WHERE defined = 1 AND weight > 0
),
srm_totals AS (
    SELECT experiment, sum(units) AS n, sum(weight) AS w, count() AS k FROM srm_inputs GROUP BY experiment
),
revision_weights AS (
    SELECT key AS experiment, revision, variant, weight, arraySum(variant_weights) AS total_weight
    FROM experiment_definitions FINAL
    ARRAY JOIN variant_names AS variant, variant_weights AS weight
),
revision_units AS (
    SELECT experiment, revision, variant, count() AS units FROM counted GROUP BY experiment, revision, variant
),
srm_observed AS (
    SELECT u.experiment AS experiment, u.revision AS revision, u.variant AS variant, u.units AS units
    FROM revision_units AS u
    INNER JOIN revision_weights AS w ON u.experiment = w.experiment AND u.revision = w.revision AND u.variant = w.variant
    WHERE w.weight > 0
),
revision_totals AS (
    SELECT experiment, revision, sum(units) AS n FROM srm_observed GROUP BY experiment, revision
),
srm_cells AS (
    SELECT w.experiment AS experiment, w.revision AS revision, w.variant AS variant, ifNull(o.units, 0) AS units,
           t.n * w.weight / w.total_weight AS expected
    FROM revision_weights AS w
    INNER JOIN revision_totals AS t ON w.experiment = t.experiment AND w.revision = t.revision
    LEFT JOIN srm_observed AS o ON w.experiment = o.experiment AND w.revision = o.revision AND w.variant = o.variant
    WHERE w.weight > 0
),
srm AS (
    SELECT experiment, sum(units) AS srm_units, toInt64(count()) - toInt64(uniqExact(revision)) AS srm_dof,
           if(sum(expected) > 0, sum(pow(units - expected, 2) / expected), NULL) AS srm_chi2
    FROM srm_cells
    GROUP BY experiment
),
srm_expected AS (
    SELECT experiment, variant, sum(expected) AS expected FROM srm_cells GROUP BY experiment, variant
),
stray AS (
    SELECT u.experiment AS experiment, sum(u.units) AS zero_weight_units
    FROM revision_units AS u
    INNER JOIN revision_weights AS w ON u.experiment = w.experiment AND u.revision = w.revision AND u.variant = w.variant
    WHERE w.weight <= 0
    GROUP BY u.experiment
),
health AS (
    SELECT experiment, sum(exposures) AS exposures, count() AS exposed_units, max(top_revision) AS max_revision
    FROM exposed GROUP BY experiment
),
multi_counts AS (
    SELECT experiment, count() AS multi_variant_units FROM multi_variant GROUP BY experiment
),
flag_counts AS (
    SELECT experiment, uniqExactIf(event_id, reason != 'multiple_variants') AS mismatches,
           sumMap(map(toString(reason), toUInt64(1))) AS flags_by_reason
    FROM assignment_flags FINAL
    GROUP BY experiment
),
computed AS (
SELECT
    v.experiment AS experiment,
    v.variant AS variant,
    {policy:String} AS policy,
    if(d.experiment != '', d.latest_revision, h.max_revision) AS revision,
    k.control AS control,
    v.variant = k.control AS is_control,
    v.defined = 1 AS defined,
    v.weight AS weight,
    multiIf(s.srm_units > 0, ifNull(e.expected, 0.) / s.srm_units,
            t.w > 0 AND v.defined = 1, v.weight / t.w, NULL) AS expected_share,
    v.units AS units,
    v.converting_units AS converting_units,
    v.conversions AS conversions,
    v.late_conversions AS late_conversions,
    if(v.units > 0, v.converting_units / v.units, NULL) AS rate,
    1.959963984540054 * sqrt(rate * (1 - rate) / v.units) AS ci_half_width,
    if(rate IS NULL, NULL, greatest(0., rate - ci_half_width)) AS ci_low,
    if(rate IS NULL, NULL, least(1., rate + ci_half_width)) AS ci_high,
    if(cc.control_units > 0, cc.control_converting_units / cc.control_units, NULL) AS control_rate,
    NOT is_control AND v.units > 0 AND control_rate > 0 AS comparable,
    if(comparable, rate / control_rate - 1, NULL) AS lift,
    if(comparable, sqrt(rate * (1 - rate) / v.units / pow(control_rate, 2)
         + pow(rate, 2) * control_rate * (1 - control_rate) / cc.control_units / pow(control_rate, 4)), NULL) AS lift_se,
    if(comparable, lift - 1.959963984540054 * lift_se, NULL) AS lift_ci_low,
    if(comparable, lift + 1.959963984540054 * lift_se, NULL) AS lift_ci_high,
    (v.converting_units + cc.control_converting_units) / (v.units + cc.control_units) AS pooled_rate,
    sqrt(pooled_rate * (1 - pooled_rate) * (1 / v.units + 1 / cc.control_units)) AS pooled_se,
    if(NOT is_control AND v.units > 0 AND cc.control_units > 0,
       if(pooled_se > 0, erfc(abs(rate - control_rate) / pooled_se / sqrt(2)), 1.), NULL) AS p_value,
    s.srm_chi2 AS srm_chi2,
    s.srm_dof AS srm_dof,
    ifNull(s.srm_chi2, 0.) / 2 AS srm_half_chi2,
    multiIf(
        z.zero_weight_units > 0, 0.,
        s.srm_dof < 1 OR s.srm_chi2 IS NULL, NULL,
        srm_half_chi2 <= 0, 1.,
        s.srm_dof % 2 = 0,
        arraySum(i -> exp(i * log(srm_half_chi2) - srm_half_chi2 - lgamma(i + 1)), range(intDiv(s.srm_dof, 2))),
        erfc(sqrt(srm_half_chi2)) + arraySum(
            i -> exp((i - 0.5) * log(srm_half_chi2) - srm_half_chi2 - lgamma(i + 0.5)),
            range(1, intDiv(s.srm_dof - 1, 2) + 1))
    ) AS srm_p_raw,
    if(srm_p_raw IS NULL, NULL, least(1., greatest(0., srm_p_raw))) AS srm_p,
    srm_p < 0.001 AS srm_flag,
    h.exposures AS exposures,
    h.exposed_units AS exposed_units,
    ifNull(f.mismatches, 0) AS mismatches,
    if(h.exposures > 0, mismatches / h.exposures, NULL) AS mismatch_rate,
    ifNull(m.multi_variant_units, 0) AS multi_variant_units,
    if(h.exposed_units > 0, multi_variant_units / h.exposed_units, NULL) AS multi_variant_rate,
    f.flags_by_reason AS flags_by_reason
FROM variants AS v
LEFT JOIN definitions AS d ON v.experiment = d.experiment
LEFT JOIN controls AS k ON v.experiment = k.experiment
LEFT JOIN control_counts AS cc ON v.experiment = cc.experiment
LEFT JOIN srm_totals AS t ON v.experiment = t.experiment
LEFT JOIN srm AS s ON v.experiment = s.experiment
LEFT JOIN srm_expected AS e ON v.experiment = e.experiment AND v.variant = e.variant
LEFT JOIN stray AS z ON v.experiment = z.experiment
LEFT JOIN health AS h ON v.experiment = h.experiment
LEFT JOIN multi_counts AS m ON v.experiment = m.experiment
LEFT JOIN flag_counts AS f ON v.experiment = f.experiment
)
SELECT * EXCEPT (comparable, pooled_rate, pooled_se, srm_half_chi2, srm_p_raw) FROM computed;
