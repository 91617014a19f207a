package emulator

// DemoClass is the SecretProviderClass that reads DemoSeed, the one `dev`
// mounts, shows in its FUSE view, prints (dev --print-class) and checks
// (dev --doctor): the guide's OOS parameter test, the JSON KMS secret
// demo-db split with jmesPath, and the binary KMS secret demo-tls-key.
const DemoClass = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: demo
spec:
  provider: alibabacloud
  parameters:
    region: ` + DemoRegion + `
    objects: |
      - objectName: ` + DemoParameter + `
        objectType: oos
      - objectName: ` + DemoSecretJSON + `
        jmesPath:
          - path: username
            objectAlias: db-username
          - path: password
            objectAlias: db-password
      - objectName: ` + DemoSecretBinary + `
        objectAlias: tls/key.der
`
