package policies

import "time"

// ContractVersion is the version of the input and output contract
// documented in doc.go and README.md. Changes within a version are
// additive; a breaking change gets a new version and a new entry point.
const ContractVersion = 1

// DecisionRule is the rule every policy bundle must define.
const DecisionRule = "data.custody.gate.decision"

// Actions.
const (
	ActionSegmentEvaluate = "segment.evaluate"
	ActionSegmentExport   = "segment.export"
	ActionProfileRead     = "profile.read"
)

// Consent statuses.
const (
	StatusGranted   = "granted"
	StatusDenied    = "denied"
	StatusWithdrawn = "withdrawn"
)

// Lawful bases (GDPR Art. 6(1)). An empty lawful basis on a granted record
// reads as consent.
const (
	BasisConsent             = "consent"
	BasisContract            = "contract"
	BasisLegalObligation     = "legal_obligation"
	BasisVitalInterests      = "vital_interests"
	BasisPublicTask          = "public_task"
	BasisLegitimateInterests = "legitimate_interests"
)

// Destination kinds known to the default policies.
const (
	KindEmail     = "email"
	KindAds       = "ads"
	KindAnalytics = "analytics"
	KindSupport   = "support"
	KindFile      = "file"
	KindWebhook   = "webhook"
)

// Requester roles known to the default policies.
const (
	RoleDPO         = "dpo"
	RoleAdmin       = "admin"
	RoleMarketer    = "marketer"
	RolePersonalize = "personalize"
)

// Input is what the gate decides on: one action on one person's data for
// one purpose. Its JSON form is the policy input (version ContractVersion).
type Input struct {
	// Action is segment.evaluate, segment.export or profile.read.
	Action string `json:"action"`
	// Purpose is a purpose key of the taxonomy; required for segment
	// actions, and for profile.read by the personalize role.
	Purpose string `json:"purpose"`
	// Now is the time of the decision; consent expiry is judged at Now.
	// Zero means the current time.
	Now time.Time `json:"now"`
	// Destination is where an export goes (segment.export).
	Destination Destination `json:"destination"`
	// Subject is the person whose data is used.
	Subject Subject `json:"subject"`
	// Requester is who asks.
	Requester Requester `json:"requester"`
}

// Destination is the receiver of an export.
type Destination struct {
	// Name is informational: no decision depends on it.
	Name string `json:"name"`
	// Kind is email, ads, analytics, support, file or webhook.
	Kind string `json:"kind"`
	// Region is where the destination processes data (e.g. EU, US).
	Region string `json:"region"`
	// Fields are the fields the destination declares it takes.
	Fields []string `json:"fields"`
}

// Subject is the person whose data is used, as far as policies care.
type Subject struct {
	// Jurisdiction is EU, UK, US-CA, US-<state>; anything else gets the
	// strictest rules.
	Jurisdiction string `json:"jurisdiction"`
	// Consents holds the current record per purpose key, raw: the policy
	// resolves which one governs a purpose.
	Consents map[string]Consent `json:"consents"`
	// GPC is a Global Privacy Control signal (Sec-GPC: 1).
	GPC bool `json:"gpc"`
	// Restricted is a restriction of processing (GDPR Art. 18).
	Restricted bool `json:"restricted"`
	// Objections are purposes the person objected to (GDPR Art. 21); an
	// objection covers the purpose's children.
	Objections []string `json:"objections"`
	// Age in years, nil when unknown.
	Age *int `json:"age"`
}

// Consent is one consent record: the person's current choice for a purpose.
type Consent struct {
	// Status is granted, denied or withdrawn.
	Status string `json:"status"`
	// At is when the choice was made; informational.
	At time.Time `json:"at"`
	// ExpiresAt is when a grant lapses; nil for never.
	ExpiresAt *time.Time `json:"expires_at"`
	// LawfulBasis is the GDPR lawful basis (Basis*); "" reads as consent.
	LawfulBasis string `json:"lawful_basis"`
}

// Requester is who asks for the decision.
type Requester struct {
	// Role is the API key's role: dpo, admin, marketer, personalize, ...
	Role string `json:"role"`
}

// Decision is the gate's answer.
type Decision struct {
	// Allow says whether the use may go ahead.
	Allow bool `json:"allow"`
	// Reasons explain the decision in words; never empty.
	Reasons []string `json:"reasons"`
	// Fields are the destination fields an export may carry: a subset of
	// the declared fields, in declared order. Empty unless Allow and the
	// action is segment.export.
	Fields []string `json:"fields"`
}
