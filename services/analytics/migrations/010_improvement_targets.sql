-- Issue 16: seed 003's 改进落实率 is the figure improvement (an improvement
-- plan set and carried out within 30 days), which replaces the stand-in
-- improvement_30d (complaints resolved within 30 days). A tenant's target
-- on the stand-in was its target for the seed's rule: it carries over,
-- unless the tenant set one on improvement already.
INSERT INTO targets (tenant_id, figure, percent)
SELECT tenant_id, 'improvement', percent FROM targets WHERE figure = 'improvement_30d'
ON CONFLICT (tenant_id, figure) DO NOTHING;
DELETE FROM targets WHERE figure = 'improvement_30d';
