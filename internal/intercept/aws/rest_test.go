package aws

import (
	"testing"

	lambdaschemas "github.com/aws/aws-sdk-go-v2/service/lambda/schemas"
	"github.com/aws/smithy-go"
	smithytraits "github.com/aws/smithy-go/traits"
)

// lambdaSchemas are the SDK's descriptions of the Lambda operations in
// lambdaRoutes.
var lambdaSchemas = map[string]*smithy.Schema{
	"ListFunctions":                lambdaschemas.ListFunctions,
	"CreateFunction":               lambdaschemas.CreateFunction,
	"GetFunction":                  lambdaschemas.GetFunction,
	"DeleteFunction":               lambdaschemas.DeleteFunction,
	"Invoke":                       lambdaschemas.Invoke,
	"InvokeWithResponseStream":     lambdaschemas.InvokeWithResponseStream,
	"InvokeAsync":                  lambdaschemas.InvokeAsync,
	"GetFunctionConfiguration":     lambdaschemas.GetFunctionConfiguration,
	"UpdateFunctionConfiguration":  lambdaschemas.UpdateFunctionConfiguration,
	"UpdateFunctionCode":           lambdaschemas.UpdateFunctionCode,
	"ListVersionsByFunction":       lambdaschemas.ListVersionsByFunction,
	"PublishVersion":               lambdaschemas.PublishVersion,
	"ListAliases":                  lambdaschemas.ListAliases,
	"CreateAlias":                  lambdaschemas.CreateAlias,
	"GetAlias":                     lambdaschemas.GetAlias,
	"UpdateAlias":                  lambdaschemas.UpdateAlias,
	"DeleteAlias":                  lambdaschemas.DeleteAlias,
	"GetPolicy":                    lambdaschemas.GetPolicy,
	"AddPermission":                lambdaschemas.AddPermission,
	"RemovePermission":             lambdaschemas.RemovePermission,
	"GetFunctionConcurrency":       lambdaschemas.GetFunctionConcurrency,
	"PutFunctionConcurrency":       lambdaschemas.PutFunctionConcurrency,
	"DeleteFunctionConcurrency":    lambdaschemas.DeleteFunctionConcurrency,
	"GetFunctionUrlConfig":         lambdaschemas.GetFunctionUrlConfig,
	"CreateFunctionUrlConfig":      lambdaschemas.CreateFunctionUrlConfig,
	"UpdateFunctionUrlConfig":      lambdaschemas.UpdateFunctionUrlConfig,
	"DeleteFunctionUrlConfig":      lambdaschemas.DeleteFunctionUrlConfig,
	"ListFunctionUrlConfigs":       lambdaschemas.ListFunctionUrlConfigs,
	"GetFunctionEventInvokeConfig": lambdaschemas.GetFunctionEventInvokeConfig,
	"ListEventSourceMappings":      lambdaschemas.ListEventSourceMappings,
	"GetAccountSettings":           lambdaschemas.GetAccountSettings,
	"ListLayers":                   lambdaschemas.ListLayers,
	"GetLayerVersionByArn":         lambdaschemas.GetLayerVersionByArn,
	"ListTags":                     lambdaschemas.ListTags,
	"TagResource":                  lambdaschemas.TagResource,
	"UntagResource":                lambdaschemas.UntagResource,
}

// TestLambdaRoutesMatchSDK checks every Lambda route against the method
// and URI of the operation in the SDK's own schemas.
func TestLambdaRoutesMatchSDK(t *testing.T) {
	for _, rt := range lambdaRoutes {
		t.Run(rt.op, func(t *testing.T) {
			s, ok := lambdaSchemas[rt.op]
			if !ok {
				t.Fatalf("no SDK schema listed for %s", rt.op)
			}
			h, ok := smithy.SchemaTrait[*smithytraits.HTTP](s)
			if !ok {
				t.Fatalf("the SDK's %s has no http trait", rt.op)
			}
			if h.Method != rt.method || h.URI != rt.uri {
				t.Errorf("route %s %s, SDK says %s %s", rt.method, rt.uri, h.Method, h.URI)
			}
		})
	}
	if len(lambdaSchemas) != len(lambdaRoutes) {
		t.Errorf("%d schemas listed for %d routes", len(lambdaSchemas), len(lambdaRoutes))
	}
}
