"""The object types of the Developer Guide's object reference: fields, required ones.

Owns: for every type the Developer Guide documents (DG = AWS Data Pipeline
Developer Guide, `https://docs.aws.amazon.com/datapipeline/latest/DeveloperGuide/
<page>.html`), its kind (activity, data node, resource, precondition, database,
data format, action, schedule, utility), its required fields, its required groups
("one of the following is required") and every field it knows, from the page's
tables. Each type names its page.

Must not: check anything itself (`typerules` does), or know about the service.
What a type is (`ObjectType`, the kinds) is `objecttype`'s; this module is the tables.

Why: AWS refuses an unknown type, a missing required field or group, and warns
about a field its type does not have; the local service must give the same
answers, so the tables are written down once, page by page. Runtime fields
(`@...`) are the service's and are not listed. Three deliberate departures from the
tables, each toward what AWS does: EmrActivity's `step` is listed under the page's
optional fields, but an EmrActivity without a step has nothing to run and is
refused (issue 13); the runner-checked preconditions (ShellCommandPrecondition,
Exists) also know `workerGroup` and `runsOn`, which route them to a runner (DG
dp-taskrunner-threading) though their tables omit them; and fields that AWS's own
examples and samples use without a word from the service are known (MySqlDataNode's
inline connection, Hive and Pig's `generatedScriptsPath`).
"""

from __future__ import annotations

from runner.localservice.objecttype import (
    ACTION,
    ACTIVITY,
    DATA_FORMAT,
    DATA_NODE,
    DATABASE,
    PRECONDITION,
    RESOURCE,
    SCHEDULE,
    UTILITY,
    ObjectType,
    names,
)

# The runtime fields without `@` that the pages list: users do not set them, but
# naming one is not a typo.
_RUNTIME = names(
    "cancellationReason emrStepLog errorId errorMessage errorStackTrace "
    "hadoopJobLog hostname reportProgressTime"
)
# Fields every scheduled, retried object has (activities, data nodes, resources).
_RUNNABLE = _RUNTIME | names(
    "attemptStatus attemptTimeout failureAndRerunMode lateAfterTimeout "
    "maxActiveInstances maximumRetries onFail onLateAction onSuccess parent "
    "pipelineLogUri reportProgressTimeout retryDelay schedule scheduleType"
)
_ACTIVITY = _RUNNABLE | names("dependsOn input output precondition runsOn workerGroup")
_EMR_ACTIVITY = _ACTIVITY | names(
    "resizeClusterBeforeRunning resizeClusterMaxInstances"
)
# `generatedScriptsPath` is not in the stored pages' tables, but AWS's own
# SimplePigActivity sample sets it (where the evaluated script is kept).
_TASK_CONFIG = names(
    "preActivityTaskConfig postActivityTaskConfig hadoopQueue generatedScriptsPath"
)
_DATA_NODE = _RUNNABLE | names("dependsOn precondition runsOn workerGroup")
_SQL_NODE = _DATA_NODE | names(
    "createTableSql database insertQuery schemaName selectQuery table"
)
_RESOURCE = _RUNNABLE | names(
    "actionOnResourceFailure actionOnTaskFailure availabilityZone httpProxy "
    "initTimeout keyPair region resourceRole role runsOn subnetId terminateAfter "
    "useOnDemandOnLastAttempt workerGroup"
)
_PRECONDITION = names(
    "attemptStatus attemptTimeout failureAndRerunMode lateAfterTimeout "
    "maximumRetries onFail onLateAction onSuccess parent preconditionTimeout "
    "reportProgressTimeout retryDelay cancellationReason currentRetryCount "
    "emrStepLog errorId errorMessage errorStackTrace hadoopJobLog hostname "
    "lastRetryTime node reportProgressTime"
)
_RUNNER_PRECONDITION = _PRECONDITION | names("workerGroup runsOn")
_DATABASE = names("*password databaseName jdbcProperties parent username")
_FORMAT = names("column parent")
_COMMAND = ("command", "scriptUri")
_ROUTE = ("runsOn", "workerGroup")


_A, _D, _R, _P = ACTIVITY, DATA_NODE, RESOURCE, PRECONDITION
TYPES: dict[str, ObjectType] = {
    # ---- activities (DG dp-object-activities) ----------------------------------
    "CopyActivity": ObjectType("dp-object-copyactivity", _A, (), (_ROUTE,), _ACTIVITY),
    "EmrActivity": ObjectType(
        "dp-object-emractivity",
        _A,
        ("step",),
        (_ROUTE,),
        _EMR_ACTIVITY | names("postStepCommand preStepCommand"),
    ),
    "HadoopActivity": ObjectType(
        "dp-object-hadoopactivity",
        _A,
        ("jarUri",),
        (_ROUTE,),
        _ACTIVITY | _TASK_CONFIG | names("argument mainClass"),
    ),
    "HiveActivity": ObjectType(
        "dp-object-hiveactivity",
        _A,
        (),
        (("hiveScript", "scriptUri"), _ROUTE),
        _EMR_ACTIVITY | _TASK_CONFIG | names("scriptVariable stage"),
    ),
    "HiveCopyActivity": ObjectType(
        "dp-object-hivecopyactivity",
        _A,
        (),
        (_ROUTE,),
        _EMR_ACTIVITY | _TASK_CONFIG | names("filterSql"),
    ),
    "PigActivity": ObjectType(
        "dp-object-pigactivity",
        _A,
        (),
        (("script", "scriptUri"), _ROUTE),
        _EMR_ACTIVITY | _TASK_CONFIG | names("scriptVariable stage"),
    ),
    "RedshiftCopyActivity": ObjectType(
        "dp-object-redshiftcopyactivity",
        _A,
        ("insertMode",),
        (_ROUTE,),
        _ACTIVITY | names("commandOptions queue transformSql"),
    ),
    "ShellCommandActivity": ObjectType(
        "dp-object-shellcommandactivity",
        _A,
        (),
        (_COMMAND, _ROUTE),
        _ACTIVITY | names("scriptArgument stage stderr stdout"),
    ),
    "SqlActivity": ObjectType(
        "dp-object-sqlactivity",
        _A,
        ("database",),
        (("script", "scriptUri"), _ROUTE),
        _ACTIVITY | names("queue scriptArgument"),
    ),
    # ---- data nodes (DG dp-object-datanodes) ------------------------------------
    "DynamoDBDataNode": ObjectType(
        "dp-object-dynamodbdatanode",
        _D,
        ("tableName",),
        (),
        _DATA_NODE
        | names("dataFormat readThroughputPercent region writeThroughputPercent"),
    ),
    # The connection written inline (`connectionString`, `username`,
    # `*password`), as DG dp-object-pigactivity's example and AWS's RDStoS3 sample
    # write it, rather than through `database`.
    "MySqlDataNode": ObjectType(
        "dp-object-mysqldatanode",
        _D,
        ("table",),
        (),
        _SQL_NODE | names("connectionString username *password"),
    ),
    "RedshiftDataNode": ObjectType(
        "dp-object-redshiftdatanode",
        _D,
        ("database", "tableName"),
        (),
        _DATA_NODE | names("createTableSql primaryKeys schemaName"),
    ),
    "S3DataNode": ObjectType(
        "dp-object-s3datanode",
        _D,
        (),
        (),
        _DATA_NODE
        | names(
            "compression dataFormat directoryPath filePath manifestFilePath "
            "s3EncryptionType"
        ),
    ),
    "SqlDataNode": ObjectType("dp-object-sqldatanode", _D, ("table",), (), _SQL_NODE),
    # ---- resources (DG dp-object-resources) -------------------------------------
    "Ec2Resource": ObjectType(
        "dp-object-ec2resource",
        _R,
        ("resourceRole", "role"),
        (),
        _RESOURCE
        | names(
            "associatePublicIpAddress imageId instanceCount instanceType "
            "minInstanceCount runAsUser securityGroupIds securityGroups "
            "spotBidPrice"
        ),
        ("runsOn", "workerGroup"),
    ),
    "EmrCluster": ObjectType(
        "dp-object-emrcluster",
        _R,
        (),
        (),
        _RESOURCE
        | names(
            "additionalMasterSecurityGroupIds additionalSlaveSecurityGroupIds "
            "amiVersion applications bootstrapAction configuration "
            "coreInstanceBidPrice coreInstanceCount coreInstanceType "
            "emrLogUri emrManagedMasterSecurityGroupId "
            "emrManagedSlaveSecurityGroupId "
            "enableDebugging hadoopSchedulerType masterInstanceBidPrice "
            "masterInstanceType releaseLabel supportedProducts "
            "taskInstanceBidPrice taskInstanceCount taskInstanceType"
        ),
        ("runsOn", "workerGroup"),
    ),
    # Listed among the resources, but nothing runs on it: it configures a proxy.
    "HttpProxy": ObjectType(
        "dp-object-httpproxy",
        UTILITY,
        ("hostname", "port"),
        (),
        names("parent *password s3NoProxy username windowsDomain windowsWorkgroup"),
    ),
    # ---- preconditions (DG dp-object-preconditions) -----------------------------
    "DynamoDBDataExists": ObjectType(
        "dp-dynamodbdataexists", _P, ("role", "tableName"), (), _PRECONDITION
    ),
    "DynamoDBTableExists": ObjectType(
        "dp-dynamodbtableexists", _P, ("role", "tableName"), (), _PRECONDITION
    ),
    "Exists": ObjectType("dp-object-exists", _P, (), (), _RUNNER_PRECONDITION),
    "S3KeyExists": ObjectType(
        "dp-object-S3KeyExists", _P, ("role", "s3Key"), (), _PRECONDITION
    ),
    "S3PrefixNotEmpty": ObjectType(
        "dp-object-s3prefixnotempty", _P, ("role", "s3Prefix"), (), _PRECONDITION
    ),
    "ShellCommandPrecondition": ObjectType(
        "dp-object-shellcommandprecondition",
        _P,
        (),
        (_COMMAND,),
        _RUNNER_PRECONDITION | names("scriptArgument stderr stdout"),
    ),
    # ---- databases (DG dp-object-databases) -------------------------------------
    "JdbcDatabase": ObjectType(
        "dp-object-jdbcdatabase",
        DATABASE,
        ("connectionString", "jdbcDriverClass", "*password", "username"),
        (),
        _DATABASE | names("jdbcDriverJarUri"),
    ),
    "RdsDatabase": ObjectType(
        "dp-object-rdsdatabase",
        DATABASE,
        ("*password", "rdsInstanceId", "username"),
        (),
        _DATABASE | names("jdbcDriverJarUri region"),
    ),
    "RedshiftDatabase": ObjectType(
        "dp-object-redshiftdatabase",
        DATABASE,
        ("*password", "username"),
        (("clusterId", "connectionString"),),
        _DATABASE | names("region"),
    ),
    # ---- data formats (DG dp-object-dataformats) --------------------------------
    "CSV": ObjectType(
        "dp-object-csv", DATA_FORMAT, (), (), _FORMAT | names("escapeChar")
    ),
    "Custom": ObjectType(
        "dp-object-custom",
        DATA_FORMAT,
        ("columnSeparator",),
        (),
        _FORMAT | names("recordSeparator"),
    ),
    "DynamoDBDataFormat": ObjectType(
        "dp-object-dynamodbdataformat", DATA_FORMAT, (), (), _FORMAT
    ),
    "DynamoDBExportDataFormat": ObjectType(
        "dp-object-dynamodbexportdataformat", DATA_FORMAT, (), (), _FORMAT
    ),
    "RegEx": ObjectType(
        "dp-object-regex",
        DATA_FORMAT,
        (),
        (),
        _FORMAT | names("inputRegEx outputFormat"),
    ),
    "TSV": ObjectType(
        "dp-object-tsv",
        DATA_FORMAT,
        (),
        (),
        _FORMAT | names("columnSeparator escapeChar recordSeparator"),
    ),
    # ---- actions (DG dp-object-actions) -----------------------------------------
    "SnsAlarm": ObjectType(
        "dp-object-snsalarm",
        ACTION,
        ("message", "role", "subject", "topicArn"),
        (),
        names("parent node"),
    ),
    "Terminate": ObjectType(
        "dp-object-terminate", ACTION, (), (), names("parent node")
    ),
    # ---- schedule and utilities -------------------------------------------------
    "Schedule": ObjectType(
        "dp-object-schedule",
        SCHEDULE,
        ("period",),
        (("startAt", "startDateTime"),),
        names("endDateTime occurrences parent"),
    ),
    "ShellScriptConfig": ObjectType(
        "dp-object-shellscriptconfig",
        UTILITY,
        (),
        (),
        names("parent scriptArgument scriptUri"),
    ),
    "EmrConfiguration": ObjectType(
        "dp-object-emrconfiguration",
        UTILITY,
        ("classification",),
        (),
        names("configuration parent property"),
    ),
    "Property": ObjectType(
        "dp-object-property", UTILITY, ("key", "value"), (), names("parent")
    ),
}

#: Every field some type knows: what `Default` and parent objects may hold (their
#: fields are inherited by objects of any type).
ALL_FIELDS: frozenset[str] = frozenset().union(*(t.fields for t in TYPES.values()))


def kind_of(type_name: str) -> str:
    """The kind of a type ("" for a type the DG does not document)."""
    found = TYPES.get(type_name)
    return found.kind if found is not None else ""
