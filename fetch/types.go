package fetch

// What each object type reads upstream: the service, the API action, the
// RAM action, the resource ARN and the noun for messages. Every message,
// metric and hint takes them from here.

// Service is the upstream service of t: TypeKMS or TypeOOS. Rate limits,
// SDK clients, endpoints and metrics are per service.
func (t ObjectType) Service() ObjectType {
	if t.IsOOS() {
		return TypeOOS
	}
	return TypeKMS
}

// Noun names what t reads, for messages.
func (t ObjectType) Noun() string {
	switch t {
	case TypeOOS:
		return "encrypted parameter"
	case TypeOOSParameter:
		return "parameter"
	}
	return "secret"
}

// ReadAction is the API action that reads a value of t (history: the
// versions of one).
func ReadAction(t ObjectType, history bool) string {
	switch {
	case t == TypeOOS && history:
		return "ListSecretParameterVersions"
	case t == TypeOOS:
		return "GetSecretParameter"
	case t == TypeOOSParameter && history:
		return "ListParameterVersions"
	case t == TypeOOSParameter:
		return "GetParameter"
	case history:
		return "ListSecretVersionIds"
	}
	return "GetSecretValue"
}

// RAMActions are the RAM actions a read of t needs, for permission hints.
func RAMActions(t ObjectType, history bool) []string {
	switch t {
	case TypeOOS:
		// The guide also grants kms:GetSecretValue for the parameter's
		// KMS key.
		return []string{"oos:" + ReadAction(t, history), "kms:GetSecretValue"}
	case TypeOOSParameter:
		return []string{"oos:" + ReadAction(t, history)}
	}
	if history {
		return []string{"kms:ListSecretVersionIds", "kms:GetSecretValue"}
	}
	return []string{"kms:GetSecretValue"}
}

// ResourceARN is the RAM resource of an object (any account).
func ResourceARN(t ObjectType, region, name string) string {
	switch t {
	case TypeOOS:
		return "acs:oos:" + region + ":*:secretparameter/" + name
	case TypeOOSParameter:
		return "acs:oos:" + region + ":*:parameter/" + name
	}
	return "acs:kms:" + region + ":*:secret/" + name
}

// BatchAction is the API action that reads several values of t at once.
func BatchAction(t ObjectType) string {
	if t == TypeOOSParameter {
		return "GetParameters"
	}
	return "GetSecretParameters"
}

// ObjectRAMActions are the RAM actions reading o needs, for permission
// hints: a directory object's listing action first, then what reads its
// members (one at a time, and batched for OOS).
func ObjectRAMActions(o *Object) []string {
	if o.Dir == nil {
		return RAMActions(o.Type, o.History > 0)
	}
	out := []string{string(o.Type.Service()) + ":" + ListAction(o.Type)}
	if o.Type.IsOOS() {
		out = append(out, "oos:"+BatchAction(o.Type))
	}
	return append(out, RAMActions(o.Type, false)...)
}

// ObjectResourceARN is the RAM resource of o in region: a directory
// object's covers every name it may list.
func ObjectResourceARN(o *Object, region string) string {
	switch {
	case o.Dir != nil && o.Dir.Path != "":
		return ResourceARN(o.Type, region, o.Dir.Path+"*")
	case o.Dir != nil:
		return ResourceARN(o.Type, region, "*")
	}
	return ResourceARN(o.Type, region, o.Name)
}
