-- Argo CD health of a schemagate SchemaMigration (docs/install.md shows the argocd-cm entry).
-- Ready → Healthy; a Job running or the database's Lease busy → Progressing; Stalled → Degraded with the
-- reason and message; a plan awaiting a person's approval → Suspended (not Degraded: nothing is wrong,
-- someone has to act); a spec change the operator has not looked at yet → Progressing.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the schemagate operator to report status"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the schemagate operator to look at generation " .. tostring(generation)
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
local ready, stalled, reconciling = conditions["Ready"], conditions["Stalled"], conditions["Reconciling"]
if status.phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = (ready and ready.message) or "Awaiting approval"
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" and reconciling.message ~= nil and reconciling.message ~= "" then
  hs.message = reconciling.message
else
  hs.message = (ready and ready.message) or ""
end
return hs
